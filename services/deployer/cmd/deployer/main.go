// Command deployer runs the deployer service as its own process against
// MLPANEL_NATS_URL and MLPANEL_MONGO_URI (the team-server setup).
package main

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/services/deployer"
)

func main() { boot.Main("deployer", run) }

func run(ctx context.Context) error {
	var r conf.Reader
	cfg := deployer.ConfigFromEnv(&r)
	c, err := boot.Connect(ctx, "deployer", &r, true)
	if err != nil {
		return err
	}
	defer c.Close()
	return deployer.Run(ctx, cfg, c.NATS, c.DB, c.Log)
}
