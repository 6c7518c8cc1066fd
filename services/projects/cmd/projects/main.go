// Command projects runs the projects service as its own process against
// MLPANEL_NATS_URL and MLPANEL_MONGO_URI (the team-server setup).
package main

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/services/projects"
)

func main() {
	boot.Service("projects", projects.Settings, true, projects.ConfigFromEnv,
		func(ctx context.Context, cfg projects.Config, c *boot.Conns) error {
			return projects.Run(ctx, cfg, c.NATS, c.DB, c.Log)
		})
}
