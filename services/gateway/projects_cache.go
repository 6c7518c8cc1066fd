package gateway

import (
	"context"
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

// projectCache answers project lookups from memory for a few seconds and
// forgets a project as soon as an event says it changed, so the data
// plane does not ask the projects service on every proxied request.
type projectCache struct {
	nc  *nats.Conn
	ttl time.Duration

	mu      sync.Mutex
	entries map[string]cached // by id and by name
	sub     *nats.Subscription
}

type cached struct {
	info projectInfo
	at   time.Time
}

func newProjectCache(nc *nats.Conn) *projectCache {
	return &projectCache{nc: nc, ttl: 5 * time.Second, entries: map[string]cached{}}
}

// watch drops entries when their project changes. A core subscription is
// enough: a missed event only means the entry lives out its TTL.
func (pc *projectCache) watch() error {
	sub, err := pc.nc.Subscribe(events.SubjectPrefix+".project.>", func(m *nats.Msg) {
		ev, err := events.Decode(m.Data)
		if err != nil {
			return
		}
		pc.mu.Lock()
		defer pc.mu.Unlock()
		for k, e := range pc.entries {
			if e.info.ID == ev.EntityID {
				delete(pc.entries, k)
			}
		}
	})
	pc.sub = sub
	return err
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
	var info projectInfo
	err := events.Call(ctx, pc.nc, "mlpanel.projects.get", events.Request{Path: map[string]string{"id": ref}}, &info)
	if err != nil {
		return projectInfo{}, err
	}
	pc.mu.Lock()
	now := time.Now()
	pc.entries[info.ID] = cached{info, now}
	pc.entries[info.Name] = cached{info, now}
	pc.mu.Unlock()
	return info, nil
}
