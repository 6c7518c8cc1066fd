// Command tracking runs the tracking service as its own process against
// MLPANEL_NATS_URL. It keeps no state, so it needs no database.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/services/tracking"
)

func main() {
	ctx, cancel := boot.SignalContext()
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tracking:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var r conf.Reader
	cfg := tracking.ConfigFromEnv(&r)
	natsURL := r.String("NATS_URL", "nats://127.0.0.1:4222")
	log := boot.Logger(r.String("LOG_LEVEL", "info"))
	if err := r.Err(); err != nil {
		return err
	}
	nc, err := boot.NATS(natsURL, "tracking", log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	return tracking.Run(ctx, cfg, nc, log)
}
