// Package tracking wires the tracking service: it answers experiments,
// runs, artifacts and registry requests by calling each running project's
// MLflow REST API. It keeps no state of its own.
package tracking

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
)

// Config is the tracking service's settings.
type Config struct{}

// ConfigFromEnv reads the MLPANEL_* settings of the tracking service.
func ConfigFromEnv(r *conf.Reader) Config { return Config{} }

// Run serves the tracking service until ctx ends.
func Run(ctx context.Context, cfg Config, nc *nats.Conn, log *slog.Logger) error {
	<-ctx.Done()
	return nil
}
