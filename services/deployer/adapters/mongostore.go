// Package adapters connects the deployer's use cases to MongoDB, NATS
// (the projects service), the projects' MLflow registries, local
// `mlflow models serve` processes and Compute Engine.
package adapters

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mlpanel/mlpanel/services/deployer/app"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// MongoStore keeps deployments in the `deployments` collection, which
// only this service reads or writes.
type MongoStore struct {
	deployments *mongo.Collection
	counters    *mongo.Collection
}

// NewMongoStore returns the store.
func NewMongoStore(db *mongo.Database) *MongoStore {
	return &MongoStore{deployments: db.Collection("deployments"), counters: db.Collection("deployments_counters")}
}

// NextSeq returns the next deployment number. The service serialises
// creates, so this is safe on FerretDB too.
func (s *MongoStore) NextSeq(ctx context.Context) (int64, error) {
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	err := s.counters.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: "deployment"}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(1)}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
	).Decode(&doc)
	if err != nil {
		return 0, fmt.Errorf("allocating deployment id: %w", err)
	}
	return doc.Seq, nil
}

func (s *MongoStore) Insert(ctx context.Context, d domain.Deployment) error {
	if _, err := s.deployments.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("inserting deployment: %w", err)
	}
	return nil
}

func (s *MongoStore) Get(ctx context.Context, id string) (domain.Deployment, error) {
	var d domain.Deployment
	err := s.deployments.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return domain.Deployment{}, app.ErrNotFound
	}
	if err != nil {
		return domain.Deployment{}, fmt.Errorf("reading deployment %s: %w", id, err)
	}
	return d, nil
}

func (s *MongoStore) Replace(ctx context.Context, d domain.Deployment) error {
	res, err := s.deployments.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, d)
	if err != nil {
		return fmt.Errorf("saving deployment %s: %w", d.ID, err)
	}
	if res.MatchedCount == 0 {
		return app.ErrNotFound
	}
	return nil
}

func (s *MongoStore) All(ctx context.Context) ([]domain.Deployment, error) {
	cur, err := s.deployments.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("listing deployments: %w", err)
	}
	var out []domain.Deployment
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("listing deployments: %w", err)
	}
	return out, nil
}
