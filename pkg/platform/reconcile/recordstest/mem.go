// Package recordstest is an in-memory reconcile.Records for the tests of
// services' use cases, so they run without a database.
package recordstest

import (
	"context"
	"slices"
	"sync"
)

// Mem keeps records in memory, in insertion order.
type Mem[T any] struct {
	idOf     func(T) string
	notFound error
	// Check, when set, vets a write against the other records under the
	// store's lock (a unique index).
	Check func(others []T, v T) error

	mu  sync.Mutex
	seq int64
	ids []string
	m   map[string]T
}

// New returns an empty store; idOf gives a record's id and notFound is
// returned for an id it does not hold.
func New[T any](idOf func(T) string, notFound error) *Mem[T] {
	return &Mem[T]{idOf: idOf, notFound: notFound, m: map[string]T{}}
}

func (s *Mem[T]) NextSeq(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq, nil
}

func (s *Mem[T]) Insert(_ context.Context, v T) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.put(v, false)
}

func (s *Mem[T]) Replace(_ context.Context, v T) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.put(v, true)
}

func (s *Mem[T]) put(v T, replace bool) error {
	id := s.idOf(v)
	if _, ok := s.m[id]; replace && !ok {
		return s.notFound
	}
	if s.Check != nil {
		var others []T
		for _, o := range s.ids {
			if o != id {
				others = append(others, s.m[o])
			}
		}
		if err := s.Check(others, v); err != nil {
			return err
		}
	}
	if _, ok := s.m[id]; !ok {
		s.ids = append(s.ids, id)
	}
	s.m[id] = v
	return nil
}

func (s *Mem[T]) Get(_ context.Context, id string) (T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	if !ok {
		return v, s.notFound
	}
	return v, nil
}

// Find returns the first record that match accepts.
func (s *Mem[T]) Find(match func(T) bool) (T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.ids {
		if match(s.m[id]) {
			return s.m[id], nil
		}
	}
	var zero T
	return zero, s.notFound
}

func (s *Mem[T]) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; !ok {
		return s.notFound
	}
	delete(s.m, id)
	s.ids = slices.DeleteFunc(s.ids, func(o string) bool { return o == id })
	return nil
}

func (s *Mem[T]) All(context.Context) ([]T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]T, 0, len(s.ids))
	for _, id := range s.ids {
		out = append(out, s.m[id])
	}
	return out, nil
}
