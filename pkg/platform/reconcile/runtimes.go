package reconcile

import (
	"context"
	"sync"
	"time"
)

// Runtimes is what a service knows about each entity's live server beyond
// its record (a process handle, crash bookkeeping), by id. Entries are
// created on first use and dropped by Forget. Fields of a *T belong to
// the id's lock holder.
type Runtimes[T any] struct {
	mu sync.Mutex
	m  map[string]*T
}

// Get returns id's entry, creating it.
func (r *Runtimes[T]) Get(id string) *T {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]*T{}
	}
	v, ok := r.m[id]
	if !ok {
		v = new(T)
		r.m[id] = v
	}
	return v
}

// Forget drops id's entry (the entity is gone).
func (r *Runtimes[T]) Forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, id)
}

// Each calls fn for every entry. Used on shutdown, after the controller
// stopped, so no reconcile writes the entries meanwhile.
func (r *Runtimes[T]) Each(fn func(id string, v *T)) {
	r.mu.Lock()
	all := make(map[string]*T, len(r.m))
	for id, v := range r.m {
		all[id] = v
	}
	r.mu.Unlock()
	for id, v := range all {
		fn(id, v)
	}
}

// Now is the time records are stamped with: UTC in milliseconds, as
// Mongo keeps it, so a record read back equals the one written.
func Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// Records is the store a reconciled service keeps its entities in (a
// docstore.Collection): the one writer of each record is the holder of
// its id's lock.
type Records[T any] interface {
	NextSeq(ctx context.Context) (int64, error)
	Insert(ctx context.Context, v T) error
	Get(ctx context.Context, id string) (T, error)
	Replace(ctx context.Context, v T) error
	All(ctx context.Context) ([]T, error)
}
