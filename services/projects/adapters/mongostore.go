// Package adapters connects the projects use cases to MongoDB and to the
// mlflow executable.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// MongoStore keeps projects in the `projects` collection, which only this
// service reads or writes.
type MongoStore struct {
	projects *mongo.Collection
	counters *mongo.Collection
}

// NewMongoStore prepares the collections and the unique index on name.
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{projects: db.Collection("projects"), counters: db.Collection("projects_counters")}
	_, err := s.projects.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "name", Value: 1}},
		Options: options.Index().SetUnique(true).SetName("name_unique"),
	})
	if err != nil {
		return nil, fmt.Errorf("creating unique index on projects.name: %w", err)
	}
	return s, nil
}

// NextSeq returns the next project number. The service serialises
// creates, so this is safe on FerretDB too.
func (s *MongoStore) NextSeq(ctx context.Context) (int64, error) {
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	err := s.counters.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: "project"}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(1)}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
	).Decode(&doc)
	if err != nil {
		return 0, fmt.Errorf("allocating project id: %w", err)
	}
	return doc.Seq, nil
}

func (s *MongoStore) Insert(ctx context.Context, p domain.Project) error {
	if _, err := s.projects.InsertOne(ctx, p); err != nil {
		if isDuplicate(err) {
			return app.ErrDuplicateName
		}
		return fmt.Errorf("inserting project: %w", err)
	}
	return nil
}

func (s *MongoStore) findOne(ctx context.Context, filter bson.D) (domain.Project, error) {
	var p domain.Project
	err := s.projects.FindOne(ctx, filter).Decode(&p)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return domain.Project{}, app.ErrNotFound
	}
	if err != nil {
		return domain.Project{}, fmt.Errorf("reading project: %w", err)
	}
	return p, nil
}

func (s *MongoStore) Get(ctx context.Context, id string) (domain.Project, error) {
	return s.findOne(ctx, bson.D{{Key: "_id", Value: id}})
}

func (s *MongoStore) GetByName(ctx context.Context, name string) (domain.Project, error) {
	return s.findOne(ctx, bson.D{{Key: "name", Value: name}})
}

func (s *MongoStore) Replace(ctx context.Context, p domain.Project) error {
	res, err := s.projects.ReplaceOne(ctx, bson.D{{Key: "_id", Value: p.ID}}, p)
	if err != nil {
		if isDuplicate(err) {
			return app.ErrDuplicateName
		}
		return fmt.Errorf("saving project %s: %w", p.ID, err)
	}
	if res.MatchedCount == 0 {
		return app.ErrNotFound
	}
	return nil
}

func (s *MongoStore) Delete(ctx context.Context, id string) error {
	res, err := s.projects.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("deleting project %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return app.ErrNotFound
	}
	return nil
}

func (s *MongoStore) All(ctx context.Context) ([]domain.Project, error) {
	cur, err := s.projects.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("listing projects: %w", err)
	}
	var out []domain.Project
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("listing projects: %w", err)
	}
	return out, nil
}

// isDuplicate recognises a unique-index violation. FerretDB v1 on SQLite
// reports one on update as an InternalError carrying SQLite's message
// instead of code 11000, so both are checked.
func isDuplicate(err error) bool {
	return mongo.IsDuplicateKeyError(err) || strings.Contains(err.Error(), "UNIQUE constraint failed")
}
