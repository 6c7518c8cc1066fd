// Command deployer runs the deployer service as its own process against
// MLPANEL_NATS_URL and MLPANEL_MONGO_URI (the team-server setup).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/services/deployer"
)

func main() {
	ctx, cancel := boot.SignalContext()
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "deployer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var r conf.Reader
	cfg := deployer.ConfigFromEnv(&r)
	natsURL := r.String("NATS_URL", "nats://127.0.0.1:4222")
	mongoURI := r.String("MONGO_URI", "mongodb://127.0.0.1:27017")
	log := boot.Logger(r.String("LOG_LEVEL", "info"))
	if err := r.Err(); err != nil {
		return err
	}
	nc, err := boot.NATS(natsURL, "deployer", log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	mc, err := boot.Mongo(ctx, mongoURI)
	if err != nil {
		return err
	}
	defer mc.Disconnect(context.Background())
	return deployer.Run(ctx, cfg, nc, mc.Database(boot.Database), log)
}
