// Package adapters connects the deployer's use cases to MongoDB, NATS
// (the projects service), the projects' MLflow registries, local
// `mlflow models serve` processes and Compute Engine.
package adapters

import (
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/platform/docstore"
	"github.com/mlpanel/mlpanel/services/deployer/app"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// MongoStore keeps deployments in the `deployments` collection, which
// only this service reads or writes.
type MongoStore struct {
	*docstore.Collection[domain.Deployment]
}

// NewMongoStore returns the store.
func NewMongoStore(db *mongo.Database) *MongoStore {
	return &MongoStore{docstore.New(db, "deployment", func(d domain.Deployment) string { return d.ID }, app.ErrNotFound)}
}
