// Package adapters connects the projects use cases to MongoDB and to the
// mlflow executable.
package adapters

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mlpanel/mlpanel/pkg/platform/docstore"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// MongoStore keeps projects in the `projects` collection, which only this
// service reads or writes.
type MongoStore struct {
	*docstore.Collection[domain.Project]
}

// NewMongoStore prepares the collections and the unique index on name.
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{docstore.New(db, "project", func(p domain.Project) string { return p.ID }, app.ErrNotFound)}
	_, err := s.Docs().Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "name", Value: 1}},
		Options: options.Index().SetUnique(true).SetName("name_unique"),
	})
	if err != nil {
		return nil, fmt.Errorf("creating unique index on projects.name: %w", err)
	}
	return s, nil
}

// Insert adds p; a taken name is app.ErrDuplicateName.
func (s *MongoStore) Insert(ctx context.Context, p domain.Project) error {
	return duplicateName(s.Collection.Insert(ctx, p))
}

// Replace saves p; a taken name is app.ErrDuplicateName.
func (s *MongoStore) Replace(ctx context.Context, p domain.Project) error {
	return duplicateName(s.Collection.Replace(ctx, p))
}

// GetByName returns the project called name.
func (s *MongoStore) GetByName(ctx context.Context, name string) (domain.Project, error) {
	return s.FindOne(ctx, bson.D{{Key: "name", Value: name}})
}

func duplicateName(err error) error {
	if docstore.IsDuplicate(err) {
		return app.ErrDuplicateName
	}
	return err
}
