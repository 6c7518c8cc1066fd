// Package deployer wires the deployer service: it serves registered models
// as prediction endpoints, locally with `mlflow models serve` or on
// Compute Engine, and owns the `deployments` collection.
package deployer

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
)

// Config is the deployer's settings.
type Config struct{}

// ConfigFromEnv reads the MLPANEL_* settings of the deployer.
func ConfigFromEnv(r *conf.Reader) Config { return Config{} }

// Run serves the deployer until ctx ends.
func Run(ctx context.Context, cfg Config, nc *nats.Conn, db *mongo.Database, log *slog.Logger) error {
	<-ctx.Done()
	return nil
}
