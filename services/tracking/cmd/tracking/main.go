// Command tracking runs the tracking service as its own process against
// MLPANEL_NATS_URL. It keeps no state, so it needs no database.
package main

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/services/tracking"
)

func main() {
	boot.Main("tracking", run, tracking.Settings...)
}

func run(ctx context.Context) error {
	cfg, err := tracking.ConfigFromEnv()
	if err != nil {
		return err
	}
	c, err := boot.Connect(ctx, "tracking", false)
	if err != nil {
		return err
	}
	defer c.Close()
	return tracking.Run(ctx, cfg, c.NATS, c.Log)
}
