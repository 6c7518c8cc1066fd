// Package activity records which projects are being used, in memory, and
// tells the projects service in batches, so the idle clock of a project
// is reset without a control-plane call per request.
package activity

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Subject is the projects service operation that receives a batch.
const Subject = "mlpanel.projects.activity"

// Report is the body of one batch: the ids of the projects used since
// the last batch or still serving a request (so a long upload keeps its
// project awake however long it takes).
type Report struct {
	IDs []string `json:"ids"`
	// Busy are the ids among IDs still serving a request: they must not
	// sleep before the next report, however short their idle timeout.
	Busy []string `json:"busy,omitempty"`
}

// Send delivers one batch; the caller bounds it with ctx.
type Send func(ctx context.Context, r Report) error

// Every is how often a tracker reports. A project's idle clock therefore
// runs at most this much late, which only ever delays a sleep.
const Every = 2 * time.Second

// Tracker counts requests per project.
type Tracker struct {
	send Send
	log  *slog.Logger

	mu       sync.Mutex
	used     map[string]bool // since the last report
	inflight map[string]int
}

// New returns a tracker that reports through send once Run is called.
func New(send Send, log *slog.Logger) *Tracker {
	return &Tracker{send: send, log: log, used: map[string]bool{}, inflight: map[string]int{}}
}

// Begin marks a request to project id as started; call the returned
// function when it ends.
func (t *Tracker) Begin(id string) (end func()) {
	if t == nil { // a gateway built without trackers (unit tests) counts nothing
		return func() {}
	}
	t.mu.Lock()
	t.used[id] = true
	t.inflight[id]++
	t.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			t.used[id] = true
			if t.inflight[id]--; t.inflight[id] <= 0 {
				delete(t.inflight, id)
			}
			t.mu.Unlock()
		})
	}
}

// Touch marks project id as used now.
func (t *Tracker) Touch(id string) {
	t.mu.Lock()
	t.used[id] = true
	t.mu.Unlock()
}

// Take returns the batch to report and starts the next one.
func (t *Tracker) Take() Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	var busy []string
	for id := range t.inflight {
		t.used[id] = true
		busy = append(busy, id)
	}
	r := Report{IDs: make([]string, 0, len(t.used))}
	for id := range t.used {
		r.IDs = append(r.IDs, id)
	}
	clear(t.used)
	r.Busy = busy
	return r
}

// Run reports every Every until ctx ends. A lost batch is not resent:
// the next one carries the same projects if they are still used.
func (t *Tracker) Run(ctx context.Context) {
	tick := time.NewTicker(Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r := t.Take()
		if len(r.IDs) == 0 {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, Every)
		if err := t.send(sctx, r); err != nil {
			t.log.Warn("reporting project activity", "projects", len(r.IDs), "err", err)
		}
		cancel()
	}
}
