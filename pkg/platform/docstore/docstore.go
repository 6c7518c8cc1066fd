// Package docstore is the Mongo side every service's store shares: one
// collection of entities keyed by their string id, a counter that hands
// out their sequence numbers, and the mapping of "no document" to the
// service's own not-found error. Each service wraps it with its domain
// type and keeps only what is its own (unique names, lookups by name).
package docstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collection holds entities of type T in the collection <kind>s, with
// their counter in <kind>s_counters.
type Collection[T any] struct {
	docs     *mongo.Collection
	counters *mongo.Collection
	kind     string
	idOf     func(T) string
	notFound error
}

// New returns the store of kind ("project") in db. idOf gives a
// document's _id; notFound is what Get, Replace and Delete return for an
// id the collection does not hold.
func New[T any](db *mongo.Database, kind string, idOf func(T) string, notFound error) *Collection[T] {
	return &Collection[T]{
		docs: db.Collection(kind + "s"), counters: db.Collection(kind + "s_counters"),
		kind: kind, idOf: idOf, notFound: notFound,
	}
}

// Docs is the underlying collection, for indexes and queries of the
// service's own.
func (c *Collection[T]) Docs() *mongo.Collection { return c.docs }

// NextSeq returns the next sequence number. The owning service
// serialises creates, so this is safe on FerretDB too.
func (c *Collection[T]) NextSeq(ctx context.Context) (int64, error) {
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	err := c.counters.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: c.kind}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(1)}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
	).Decode(&doc)
	if err != nil {
		return 0, fmt.Errorf("allocating %s id: %w", c.kind, err)
	}
	return doc.Seq, nil
}

// Insert adds v; a unique-index violation is reported by IsDuplicate.
func (c *Collection[T]) Insert(ctx context.Context, v T) error {
	if _, err := c.docs.InsertOne(ctx, v); err != nil {
		return fmt.Errorf("inserting %s: %w", c.kind, err)
	}
	return nil
}

// FindOne returns the document matching filter, or the not-found error.
func (c *Collection[T]) FindOne(ctx context.Context, filter bson.D) (T, error) {
	var v T
	err := c.docs.FindOne(ctx, filter).Decode(&v)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return v, c.notFound
	}
	if err != nil {
		return v, fmt.Errorf("reading %s: %w", c.kind, err)
	}
	return v, nil
}

// Get returns the entity with id.
func (c *Collection[T]) Get(ctx context.Context, id string) (T, error) {
	return c.FindOne(ctx, bson.D{{Key: "_id", Value: id}})
}

// Replace writes v over the document with its id.
func (c *Collection[T]) Replace(ctx context.Context, v T) error {
	id := c.idOf(v)
	res, err := c.docs.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, v)
	if err != nil {
		return fmt.Errorf("saving %s %s: %w", c.kind, id, err)
	}
	if res.MatchedCount == 0 {
		return c.notFound
	}
	return nil
}

// Delete removes the document with id.
func (c *Collection[T]) Delete(ctx context.Context, id string) error {
	res, err := c.docs.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("deleting %s %s: %w", c.kind, id, err)
	}
	if res.DeletedCount == 0 {
		return c.notFound
	}
	return nil
}

// All returns every entity in sequence order.
func (c *Collection[T]) All(ctx context.Context) ([]T, error) {
	cur, err := c.docs.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("listing %ss: %w", c.kind, err)
	}
	var out []T
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("listing %ss: %w", c.kind, err)
	}
	return out, nil
}

// IsDuplicate recognises a unique-index violation. FerretDB v1 on SQLite
// reports one on update as an InternalError carrying SQLite's message
// instead of code 11000, so both are checked.
func IsDuplicate(err error) bool {
	return err != nil && (mongo.IsDuplicateKeyError(err) || strings.Contains(err.Error(), "UNIQUE constraint failed"))
}
