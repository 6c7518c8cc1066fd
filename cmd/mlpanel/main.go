// Command mlpanel runs the whole panel in one process: embedded NATS and
// FerretDB, every service and the gateway. Ctrl-C stops it all.
package main

import (
	"context"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
)

func main() { boot.Main("mlpanel", run, stack.Settings...) }

func run(ctx context.Context) error {
	cfg, err := stack.ConfigFromEnv()
	if err != nil {
		return err
	}
	log := boot.Logger(cfg.LogLevel)
	s, err := stack.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	log.Info("mlpanel is up", "url", s.URL, "home", cfg.Home, "api", s.URL+"/openapi.yaml")
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case why := <-s.Done():
		log.Error("a service stopped", "why", why)
	}
	s.Close()
	log.Info("stopped")
	return nil
}
