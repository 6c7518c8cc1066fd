// Command ferretdbd runs FerretDB (SQLite handler) as a process of its own,
// the standalone MongoDB-wire database of the multi-process test: the
// services reach it over TCP exactly as they would reach mongod.
//
//	ferretdbd -dir DIR -listen 127.0.0.1:15301
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/embedded"
)

func main() {
	dir := flag.String("dir", "ferretdb", "directory of the SQLite files")
	listen := flag.String("listen", "127.0.0.1:27017", "host:port to listen on")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	f, err := embedded.StartFerretDB(sctx, *dir, *listen, embedded.WithLogger(log))
	scancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdbd:", err)
		os.Exit(1)
	}
	// The test waits for this line before starting the services.
	fmt.Println("ready", f.URI())
	<-ctx.Done()
	f.Close()
}
