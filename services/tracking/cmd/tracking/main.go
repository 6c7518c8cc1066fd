// Command tracking runs the tracking service as its own process against
// MLPANEL_NATS_URL. It keeps no state, so it needs no database.
package main

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/services/tracking"
)

func main() {
	boot.Service("tracking", tracking.Settings, false, tracking.ConfigFromEnv,
		func(ctx context.Context, cfg tracking.Config, c *boot.Conns) error {
			return tracking.Run(ctx, cfg, c.NATS, c.Log)
		})
}
