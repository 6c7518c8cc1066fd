package app

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile/recordstest"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

func waitFor(t *testing.T, s *Service, id, what string, ok func(d domain.Deployment) bool) domain.Deployment {
	t.Helper()
	return recordstest.WaitFor(t, s.store.Get, id, ok, func(d domain.Deployment) string {
		return "not " + what + ": " + d.Version + " " + string(d.Status) + " rollover_error=" + d.RolloverError
	})
}

// A deployment that follows an alias serves what it points to, rolls
// over when it moves (new server first, old one stopped after), keeps
// the old version when the new one fails, and keeps serving when the
// alias goes.
func TestFollowAlias(t *testing.T) {
	aliasVersion.Store("2")
	t.Cleanup(func() { aliasVersion.Store("") })
	s, b, _, pub := newTestService(t, 5)
	b.startFn = nil
	ctx := context.Background()

	if _, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m", Version: "@other"}); events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("unknown alias: %v, want a 400 naming it", err)
	}
	if _, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m", Version: "@champion", FollowAlias: "prod"}); events.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("disagreeing version and follow_alias: %v, want 400", err)
	}
	d, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m", Version: "@champion"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != "2" || d.FollowAlias != "champion" {
		t.Fatalf("created %+v, want version 2 following champion", d)
	}
	waitStatus(t, s, d.ID, domain.StatusRunning)
	first := b.last()

	aliasVersion.Store("3")
	got := waitFor(t, s, d.ID, "rolled over to 3", func(d domain.Deployment) bool {
		return d.Version == "3" && len(d.Rollovers) == 1 && d.Rollovers[0].Result == domain.RolloverSucceeded
	})
	if got.ModelURI != "models:/m/3" || got.Status != domain.StatusRunning || b.last().version != "3" {
		t.Fatalf("after the rollover %+v", got)
	}
	waitFor(t, s, d.ID, "old server retired", func(d domain.Deployment) bool { return len(d.Retired) == 0 && first.stopped.Load() })
	if !strings.Contains(pub.Changes(), "rollover_started,rolled_over") {
		t.Fatalf("events %s, want rollover_started then rolled_over", pub.Changes())
	}

	// The next version fails to start: 3 keeps serving, once.
	second := b.last()
	b.startFn = func() error { return errors.New("boom") }
	aliasVersion.Store("4")
	got = waitFor(t, s, d.ID, "failed rollover", func(d domain.Deployment) bool { return d.RolloverError != "" })
	if got.Version != "3" || second.stopped.Load() || got.LastRollover().Result != domain.RolloverFailed || !strings.Contains(got.RolloverError, "boom") {
		t.Fatalf("after a failed rollover %+v", got)
	}
	if !strings.Contains(pub.Changes(), "rollover_failed") {
		t.Fatalf("events %s, want rollover_failed", pub.Changes())
	}

	// The alias goes: 3 keeps serving, and the deployment says so.
	aliasVersion.Store("")
	got = waitFor(t, s, d.ID, "alias error", func(d domain.Deployment) bool { return d.AliasError != "" })
	if got.Version != "3" || got.Status != domain.StatusRunning || second.stopped.Load() {
		t.Fatalf("after the alias went %+v", got)
	}
}

// A deployer killed mid-rollover left three servers: the serving one, the
// new version's (not yet switched to) and an old one still draining. The
// restarted deployer keeps the serving one, stops the other two, records
// the rollover as interrupted and rolls over again.
func TestRolloverSettledAfterRestart(t *testing.T) {
	aliasVersion.Store("3")
	t.Cleanup(func() { aliasVersion.Store("") })
	serving, half, draining := &fakeServer{version: "2"}, &fakeServer{version: "3"}, &fakeServer{version: "1"}
	for _, f := range []*fakeServer{serving, half, draining} {
		f.alive.Store(true)
		f.ready.Store(true)
	}
	b := &fakeBackend{adoptable: map[int]*fakeServer{10: serving, 11: half, 9: draining}}
	now := time.Now()
	d := domain.Deployment{ID: "1", Seq: 1, ProjectID: "1", ModelID: "m", Version: "2", ModelURI: "models:/m/2",
		FollowAlias: "champion", Type: domain.TypeLocal, DesiredState: domain.DesiredRunning, Status: domain.StatusRunning,
		Pid: 10, Port: 1, URL: "http://127.0.0.1:1", CreatedAt: now, UpdatedAt: now,
		Rollovers: []domain.Rollover{{From: "1", To: "2", Started: now, Finished: &now, Result: domain.RolloverSucceeded},
			{From: "2", To: "3", Started: now, Result: domain.RolloverInProgress}},
		Next:    &domain.ServerRef{Version: "3", Pid: 11, Port: 2, URL: "http://127.0.0.1:2"},
		Retired: []domain.ServerRef{{Version: "1", Pid: 9, Port: 3, URL: "http://127.0.0.1:3"}},
	}
	s, _, _, _ := newTestServiceWith(t, 5, b, []domain.Deployment{d})

	got := waitFor(t, s, d.ID, "rolled over again", func(d domain.Deployment) bool {
		return d.Version == "3" && len(d.Rollovers) == 3 && d.Rollovers[2].Result == domain.RolloverSucceeded
	})
	if r := got.Rollovers[1]; r.Result != domain.RolloverInterrupted || !strings.Contains(r.Error, "restarted") || r.Finished == nil {
		t.Fatalf("the cut rollover %+v: want interrupted by the restart", r)
	}
	if !half.stopped.Load() || !draining.stopped.Load() {
		t.Fatalf("half started stopped %v, draining stopped %v: want both stopped", half.stopped.Load(), draining.stopped.Load())
	}
	waitFor(t, s, d.ID, "old server retired", func(d domain.Deployment) bool { return len(d.Retired) == 0 && serving.stopped.Load() })
	if b.count() != 1 || b.last().version != "3" {
		t.Fatalf("%d servers started, want one for version 3", b.count())
	}
}
