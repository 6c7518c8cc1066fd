package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
)

// StoreError is what a caller sees of a store failure: notFound when the
// store answered its sentinel, otherwise err wrapped with what was read.
func StoreError(err, sentinel, notFound error, what string) error {
	if errors.Is(err, sentinel) {
		return notFound
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ByID adapts a use case that takes the id in the subject's path.
func ByID[T any](fn func(ctx context.Context, id string) (T, error)) Operation {
	return func(ctx context.Context, r Request) (any, error) { return fn(ctx, r.Param("id")) }
}

// Lines reads ?lines= of a logs operation: 100 when absent, otherwise a
// whole number from 1 to max.
func (r Request) Lines(max int) (int, error) {
	v := r.Query["lines"]
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, Errorf(http.StatusBadRequest, "lines=%q: want a whole number", v)
	}
	if n <= 0 || n > max {
		return 0, Errorf(http.StatusBadRequest, "lines must be between 1 and %d", max)
	}
	return n, nil
}

// LogsOp adapts a logs use case: the path's id and ?lines= bounded by max.
func LogsOp[T any](max int, fn func(ctx context.Context, id string, n int) (T, error)) Operation {
	return func(ctx context.Context, r Request) (any, error) {
		n, err := r.Lines(max)
		if err != nil {
			return nil, err
		}
		return fn(ctx, r.Param("id"), n)
	}
}

// Publishes is what publishes change events (*Publisher).
type Publishes interface {
	Publish(ctx context.Context, entity, id, change string, data any) (Event, error)
}

// Recorder writes an entity's record, then publishes its change with the
// record as written. The record is the truth: a lost event is logged,
// never a failed call.
type Recorder[T any] struct {
	Entity  string // "project", "deployment"
	IDOf    func(v T) string
	Stamp   func(v *T) // marks the record changed (its updatedAt)
	Replace func(ctx context.Context, v T) error
	Pub     Publishes
	Log     *slog.Logger
}

// Save stamps and writes *v and publishes change unless it is "".
func (r Recorder[T]) Save(ctx context.Context, v *T, change string) error {
	if r.Stamp != nil {
		r.Stamp(v)
	}
	if err := r.Replace(ctx, *v); err != nil {
		return err
	}
	if change != "" {
		r.Publish(ctx, *v, change)
	}
	return nil
}

// Publish publishes change of v.
func (r Recorder[T]) Publish(ctx context.Context, v T, change string) {
	id := r.IDOf(v)
	if _, err := r.Pub.Publish(ctx, r.Entity, id, change, v); err != nil {
		r.Log.Error("publishing "+r.Entity+" event", r.Entity, id, "change", change, "err", err)
	}
}
