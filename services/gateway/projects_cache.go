package gateway

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// projectInfo is what the gateway needs to know about a project: where
// its tracking server is, who created it, whether it runs.
type projectInfo struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Status      string    `json:"status"`
	CreatedBy   string    `json:"createdBy"`
	CreatedByID string    `json:"createdById"`
	CreatedAt   time.Time `json:"createdAt"`
	InternalURL string    `json:"internalUrl"`
}

// projectCache answers project lookups from memory for a few seconds, so
// the data plane does not ask the projects service on every proxied
// request. Project events carry the whole project, so an event replaces
// the entry at once: the cache never shows an older state than the one
// the API already answered.
type projectCache struct {
	nc  *nats.Conn
	ttl time.Duration

	mu      sync.Mutex
	entries map[string]cached // by id and by name
	seq     uint64            // events seen, all projects
	last    map[string]uint64 // seq of the latest event per project id
	sub     *nats.Subscription
}

type cached struct {
	info projectInfo
	at   time.Time
}

func newProjectCache(nc *nats.Conn) *projectCache {
	return &projectCache{nc: nc, ttl: 5 * time.Second, entries: map[string]cached{}, last: map[string]uint64{}}
}

// watch keeps entries in step with project events. A core subscription
// is enough: a missed event only means the entry lives out its TTL.
func (pc *projectCache) watch() error {
	sub, err := pc.nc.Subscribe(events.SubjectPrefix+".project.>", func(m *nats.Msg) {
		ev, err := events.Decode(m.Data)
		if err != nil || ev.EntityID == "" {
			return
		}
		var info projectInfo
		known := json.Unmarshal(ev.Data, &info) == nil && info.ID == ev.EntityID && ev.Change != "deleted"
		pc.apply(ev.EntityID, info, known)
	})
	pc.sub = sub
	return err
}

// apply records an event about project id: the new state when known,
// else the project is forgotten and asked for again.
func (pc *projectCache) apply(id string, info projectInfo, known bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.seq++
	pc.last[id] = pc.seq
	for k, e := range pc.entries {
		if e.info.ID == id {
			delete(pc.entries, k)
		}
	}
	if known {
		now := time.Now()
		pc.entries[info.ID] = cached{info, now}
		pc.entries[info.Name] = cached{info, now}
	}
}

func (pc *projectCache) stop() {
	if pc.sub != nil {
		_ = pc.sub.Unsubscribe()
	}
}

// get resolves a project id or name; errors carry the projects service's
// status (404 for an unknown project).
func (pc *projectCache) get(ctx context.Context, ref string) (projectInfo, error) {
	pc.mu.Lock()
	e, ok := pc.entries[ref]
	pc.mu.Unlock()
	if ok && time.Since(e.at) < pc.ttl {
		return e.info, nil
	}
	return pc.fresh(ctx, ref)
}

// fresh asks the projects service, bypassing the cache, and keeps the
// answer unless an event about the project arrived meanwhile (the answer
// may predate it). The events are counted across projects because ref
// may be a name, whose project id is known only from the answer.
func (pc *projectCache) fresh(ctx context.Context, ref string) (projectInfo, error) {
	pc.mu.Lock()
	before := pc.seq
	pc.mu.Unlock()
	var info projectInfo
	err := events.Call(ctx, pc.nc, "mlpanel.projects.get", events.Request{Path: map[string]string{"id": ref}}, &info)
	if err != nil {
		return projectInfo{}, err
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.last[info.ID] <= before {
		now := time.Now()
		pc.entries[info.ID] = cached{info, now}
		pc.entries[info.Name] = cached{info, now}
	}
	return info, nil
}
