package app

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

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
