package gateway

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	projects "github.com/mlpanel/mlpanel/services/projects/client"
)

// TestProjectCacheFollowsEvents: once a project event says running, the
// cache answers running at once, however long its TTL; a deletion makes
// it ask the projects service again, once.
func TestProjectCacheFollowsEvents(t *testing.T) {
	nc := startNATS(t)
	var mu sync.Mutex
	state := projectInfo{ID: "3", Name: "churn", Status: "starting", InternalURL: "http://127.0.0.1:5003"}
	asked := 0
	ms, err := events.AddService(nc, "projects", "0.0.0", "test", 5*time.Second, map[string]events.Operation{
		"get": func(context.Context, events.Request) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			asked++
			return state, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })

	pc := projects.NewResolver(projects.New(nc), time.Hour) // only events may change what it answers
	if err := pc.Watch(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Stop)
	ctx := context.Background()
	if p, err := pc.Get(ctx, "churn"); err != nil || p.Status != "starting" {
		t.Fatalf("first get: %+v %v", p, err)
	}

	mu.Lock()
	state.Status = "running"
	running := state
	mu.Unlock()
	publish := func(change string, data projectInfo) {
		ev, err := events.New("mlpanel/projects", "project", data.ID, change, data)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(ev)
		if err := nc.Publish(ev.NATSSubject(), raw); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	publish("running", running)
	deadline := time.Now().Add(2 * time.Second)
	for {
		p, err := pc.Get(ctx, "churn")
		if err != nil {
			t.Fatal(err)
		}
		if p.Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache still answers %q after the running event", p.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p, _ := pc.Get(ctx, "3"); p.Status != "running" {
		t.Fatalf("by id: %q", p.Status)
	}
	mu.Lock()
	before := asked
	mu.Unlock()
	publish("deleted", running)
	time.Sleep(100 * time.Millisecond)
	_, _ = pc.Get(ctx, "churn")
	// The answer asked for by name is kept: the next calls by name and by
	// id are answered from memory, not by the service every time.
	_, _ = pc.Get(ctx, "churn")
	_, _ = pc.Get(ctx, "3")
	mu.Lock()
	defer mu.Unlock()
	if asked != before+1 {
		t.Fatalf("after a deleted event the cache asked the service %d times for three lookups, want once", asked-before)
	}
}
