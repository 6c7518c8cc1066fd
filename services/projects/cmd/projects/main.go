// Command projects runs the projects service as its own process against
// MLPANEL_NATS_URL and MLPANEL_MONGO_URI (the team-server setup).
package main

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/services/projects"
)

func main() {
	boot.Main("projects", run, projects.Settings...)
}

func run(ctx context.Context) error {
	cfg, err := projects.ConfigFromEnv()
	if err != nil {
		return err
	}
	c, err := boot.Connect(ctx, "projects", true)
	if err != nil {
		return err
	}
	defer c.Close()
	return projects.Run(ctx, cfg, c.NATS, c.DB, c.Log)
}
