// Command deployer runs the deployer service as its own process against
// MLPANEL_NATS_URL and MLPANEL_MONGO_URI (the team-server setup).
package main

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/services/deployer"
)

func main() {
	boot.Service("deployer", deployer.Settings, true, deployer.ConfigFromEnv,
		func(ctx context.Context, cfg deployer.Config, c *boot.Conns) error {
			return deployer.Run(ctx, cfg, c.NATS, c.DB, c.Log)
		})
}
