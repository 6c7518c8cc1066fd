// Command gateway runs the HTTP gateway as its own process against
// MLPANEL_NATS_URL and MLPANEL_MONGO_URI (users, tokens, members, audit).
package main

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/services/gateway"
)

func main() {
	boot.Service("gateway", gateway.Settings, true, gateway.ConfigFromEnv,
		func(ctx context.Context, cfg gateway.Config, c *boot.Conns) error {
			return gateway.New(cfg, c.NATS, c.DB, c.Log).Run(ctx)
		})
}
