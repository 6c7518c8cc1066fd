// Command deployer runs the deployer service as its own process against
// MLPANEL_NATS_URL and MLPANEL_MONGO_URI (the team-server setup).
package main

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/services/deployer"
)

func main() {
	boot.Main("deployer", run, deployer.Settings...)
}

func run(ctx context.Context) error {
	cfg, err := deployer.ConfigFromEnv()
	if err != nil {
		return err
	}
	c, err := boot.Connect(ctx, "deployer", true)
	if err != nil {
		return err
	}
	defer c.Close()
	return deployer.Run(ctx, cfg, c.NATS, c.DB, c.Log)
}
