// Command gateway runs the HTTP gateway as its own process against
// MLPANEL_NATS_URL and MLPANEL_MONGO_URI (users, tokens, members, audit).
package main

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/services/gateway"
)

func main() {
	boot.Main("gateway", run, gateway.Settings...)
}

func run(ctx context.Context) error {
	cfg, err := gateway.ConfigFromEnv()
	if err != nil {
		return err
	}
	c, err := boot.Connect(ctx, "gateway", true)
	if err != nil {
		return err
	}
	defer c.Close()
	return gateway.New(cfg, c.NATS, c.DB, c.Log).Run(ctx)
}
