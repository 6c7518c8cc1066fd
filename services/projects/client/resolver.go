package client

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// Resolver answers project lookups by id or name from memory for a few
// seconds, so a caller on every request's path (the gateway's proxy and
// its authorisation, owner lookups) does not ask the projects service
// each time. Project events carry the whole project, so an event
// replaces the entry at once: the resolver never answers a state older
// than one the API already showed.
type Resolver struct {
	c   Client
	ttl time.Duration

	mu      sync.Mutex
	entries map[string]cached // by id and by name
	seq     uint64            // events seen, all projects
	last    map[string]uint64 // seq of the latest event per project id
	sub     *nats.Subscription
}

type cached struct {
	p  Project
	at time.Time
}

// DefaultTTL bounds how long an answer is kept when no event about the
// project arrives (a missed event, a change made behind the service).
const DefaultTTL = 5 * time.Second

// NewResolver returns a resolver over c; Watch makes it follow events.
func NewResolver(c Client, ttl time.Duration) *Resolver {
	return &Resolver{c: c, ttl: ttl, entries: map[string]cached{}, last: map[string]uint64{}}
}

// Watch keeps entries in step with project events. A core subscription
// is enough: a missed event only means the entry lives out its TTL.
func (r *Resolver) Watch() error {
	sub, err := r.c.nc.Subscribe(events.SubjectPrefix+".project.>", func(m *nats.Msg) {
		ev, err := events.Decode(m.Data)
		if err != nil || ev.EntityID == "" {
			return
		}
		var p Project
		known := json.Unmarshal(ev.Data, &p) == nil && p.ID == ev.EntityID && ev.Change != "deleted"
		r.Apply(ev.EntityID, p, known)
	})
	r.sub = sub
	return err
}

// Stop ends Watch.
func (r *Resolver) Stop() {
	if r.sub != nil {
		_ = r.sub.Unsubscribe()
	}
}

// Apply records an event about project id: the new state when known,
// else the project is forgotten and asked for again.
func (r *Resolver) Apply(id string, p Project, known bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	r.last[id] = r.seq
	for k, e := range r.entries {
		if e.p.ID == id {
			delete(r.entries, k)
		}
	}
	if known {
		r.keep(p, time.Now())
	}
}

func (r *Resolver) keep(p Project, at time.Time) {
	r.entries[p.ID] = cached{p, at}
	r.entries[p.Name] = cached{p, at}
}

// Get resolves a project id or name; errors carry the projects service's
// status (404 for an unknown project).
func (r *Resolver) Get(ctx context.Context, ref string) (Project, error) {
	r.mu.Lock()
	e, ok := r.entries[ref]
	r.mu.Unlock()
	if ok && time.Since(e.at) < r.ttl {
		return e.p, nil
	}
	return r.Fresh(ctx, ref)
}

// Fresh asks the projects service, bypassing the cache, and keeps the
// answer unless an event about the project arrived meanwhile (the answer
// may predate it). Events are counted across projects because ref may
// be a name, whose project id is known only from the answer.
func (r *Resolver) Fresh(ctx context.Context, ref string) (Project, error) {
	r.mu.Lock()
	before := r.seq
	r.mu.Unlock()
	p, err := r.c.Get(ctx, ref)
	if err != nil {
		return Project{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last[p.ID] <= before {
		r.keep(p, time.Now())
	}
	return p, nil
}
