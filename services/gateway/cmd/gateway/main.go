// Command gateway runs the HTTP gateway as its own process against
// MLPANEL_NATS_URL and MLPANEL_MONGO_URI (users, tokens, members, audit).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/services/gateway"
)

func main() {
	ctx, cancel := boot.SignalContext()
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var r conf.Reader
	cfg := gateway.ConfigFromEnv(&r)
	natsURL := r.String("NATS_URL", "nats://127.0.0.1:4222")
	mongoURI := r.String("MONGO_URI", "mongodb://127.0.0.1:27017")
	log := boot.Logger(r.String("LOG_LEVEL", "info"))
	if err := r.Err(); err != nil {
		return err
	}
	nc, err := boot.NATS(natsURL, "gateway", log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	mc, err := boot.Mongo(ctx, mongoURI)
	if err != nil {
		return err
	}
	defer mc.Disconnect(context.Background())
	return gateway.New(cfg, nc, mc.Database(boot.Database), log).Run(ctx)
}
