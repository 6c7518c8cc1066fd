package app

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// A deployment with an idle_timeout sleeps when no prediction is
// reported, never while one is in flight, wakes once for concurrent
// wakes, and a stopped one answers 409 instead of waking.
func TestDeploymentSleepAndWake(t *testing.T) {
	s, b, _, pub := newTestService(t, 5)
	ctx := context.Background()
	if _, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m", IdleTimeout: "1s", MinAwake: "1"}); events.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("idle_timeout with min_awake 1: %v, want 400", err)
	}
	d, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m", IdleTimeout: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, d.ID, domain.StatusRunning)

	// In flight: reports keep it awake past its timeout.
	until := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(until) {
		s.Touch(activity.Report{IDs: []string{d.ID}, Busy: []string{d.ID}})
		time.Sleep(200 * time.Millisecond)
	}
	if got, _ := s.Get(ctx, d.ID); got.Status != domain.StatusRunning {
		t.Fatalf("a deployment serving a prediction went %s", got.Status)
	}
	asleep := waitStatus(t, s, d.ID, domain.StatusSleeping)
	if asleep.DesiredState != domain.DesiredRunning || asleep.URL != "" || asleep.SleepReason == "" {
		t.Fatalf("asleep: %+v", asleep)
	}
	waitSleepStopped(t, s, b)

	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			got, err := s.Wake(ctx, d.ID)
			if err == nil && got.Status != domain.StatusRunning {
				t.Errorf("wake answered %s", got.Status)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if b.count() != 2 {
		t.Fatalf("%d starts, want 2 (create, one wake)", b.count())
	}
	if _, err := s.Stop(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, d.ID, domain.StatusStopped)
	if _, err := s.Wake(ctx, d.ID); events.StatusOf(err) != http.StatusConflict {
		t.Fatalf("waking a stopped deployment: %v, want 409", err)
	}
	want := "created,starting,running,sleeping,waking,running,stopping,stopped"
	if got := pub.Changes(); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
}

// On a cluster runtime a local deployment's model server is a Nomad job
// or a Kubernetes Deployment (Local() false): it sleeps and wakes the same.
func TestDeploymentOnAClusterRuntimeSleepsToo(t *testing.T) {
	s, b, _, _ := newTestServiceWith(t, 5, &fakeBackend{remote: true}, nil)
	ctx := context.Background()
	d, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m", IdleTimeout: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, d.ID, domain.StatusRunning)
	waitStatus(t, s, d.ID, domain.StatusSleeping)
	waitSleepStopped(t, s, b)
	if got, err := s.Wake(ctx, d.ID); err != nil || got.Status != domain.StatusRunning || b.count() != 2 {
		t.Fatalf("wake: %s, %v, %d starts; want running after a second start", got.Status, err, b.count())
	}
}

// waitSleepStopped waits until the sleep has stopped the deployment's
// server and finished. The sleep saves the sleeping state before it
// starts the stop in the background, so a bare s.bg.Wait() right after
// the state shows could run before the stop was even counted (and the
// race detector rightly flags a WaitGroup.Add racing its Wait).
func waitSleepStopped(t *testing.T, s *Service, b *fakeBackend) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !b.last().stopped.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the sleeping deployment's server was not stopped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.bg.Wait() // the stop is counted by now: wait for its bookkeeping
}
