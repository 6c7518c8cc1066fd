package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/events/eventstest"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

func newIdleService(t *testing.T, idle time.Duration, maxAwake int) (*Service, *fakeRuntime, *eventstest.Publisher) {
	t.Helper()
	home := t.TempDir()
	srv := newFakeRuntime()
	srv.healthy.Store(true)
	pub := &eventstest.Publisher{}
	s := New(Config{
		Home: home, Ports: proc.Range{Lo: 47200, Hi: 47299}, Host: "127.0.0.1",
		AdvertiseURL: func(p domain.Project) string { return "http://mlflow/" + p.Name },
		InternalURL:  func(p domain.Project) string { return "http://internal/" + p.ID },
		Interval:     10 * time.Millisecond, StopOnExit: true,
		StartTimeout: 5 * time.Second, IdleTimeout: idle, MaxAwake: maxAwake,
	}, newMemStore(), srv, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Supervise(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, srv, pub
}

func runProject(t *testing.T, s *Service, name string) domain.Project {
	t.Helper()
	p, err := s.Create(context.Background(), CreateInput{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background(), p.ID); err != nil {
		t.Fatal(err)
	}
	return waitStatus(t, s, p.ID, domain.StatusRunning)
}

// An unused project sleeps (its server stopped, still wanted running),
// activity keeps it awake, and concurrent wakes start it once.
func TestIdleProjectSleepsAndWakesOnce(t *testing.T) {
	s, srv, pub := newIdleService(t, time.Second, 0)
	ctx := context.Background()
	p := runProject(t, s, "alpha")

	// Reported use holds off the sleep.
	for range 15 {
		s.Touch(activity.Report{IDs: []string{p.ID}})
		time.Sleep(100 * time.Millisecond)
	}
	// So does a request in flight, longer than the idle timeout, until
	// the next report is due.
	s.Touch(activity.Report{IDs: []string{p.ID}, Busy: []string{p.ID}})
	time.Sleep(2 * time.Second)
	if got, _ := s.store.Get(ctx, p.ID); got.Status != domain.StatusRunning {
		t.Fatalf("a project serving a request went %s", got.Status)
	}
	if got, _ := s.store.Get(ctx, p.ID); got.Status != domain.StatusRunning {
		t.Fatalf("a project in use went %s", got.Status)
	}
	asleep := waitStatus(t, s, p.ID, domain.StatusSleeping)
	if asleep.DesiredState != domain.DesiredRunning || asleep.Pid != 0 || srv.ended(p.Pid) != "stopped" || !strings.Contains(asleep.SleepReason, "idle") {
		t.Fatalf("asleep: %+v (server alive %v)", asleep, srv.ended(p.Pid) != "stopped")
	}
	starts := srv.starts.Load()

	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() {
			got, err := s.Wake(ctx, p.Name)
			if err == nil && got.Status != domain.StatusRunning {
				err = errors.New("woke to " + string(got.Status))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("wake: %v", err)
		}
	}
	if n := srv.starts.Load() - starts; n != 1 {
		t.Fatalf("5 concurrent wakes started the server %d times, want once", n)
	}
	if got := pub.Changes(); !strings.Contains(got, "sleeping,waking,running") {
		t.Fatalf("events %s, want sleeping,waking,running", got)
	}
	// Terminating a sleeping project works, and a terminated one is not woken.
	waitStatus(t, s, p.ID, domain.StatusSleeping)
	if got, err := s.Terminate(ctx, p.ID); err != nil || got.Status != domain.StatusTerminated {
		t.Fatalf("terminate a sleeping project: %+v, %v", got, err)
	}
	if _, err := s.Wake(ctx, p.ID); events.StatusOf(err) != http.StatusConflict {
		t.Fatalf("wake of a terminated project: %v, want 409", err)
	}
}

func TestWakeThatFailsAnswers503WithTheLog(t *testing.T) {
	s, srv, _ := newIdleService(t, 200*time.Millisecond, 0)
	p := runProject(t, s, "alpha")
	waitStatus(t, s, p.ID, domain.StatusSleeping)
	srv.failWith(errors.New("no python here"))
	_, err := s.Wake(context.Background(), p.ID)
	if events.StatusOf(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "no python here") {
		t.Fatalf("failed wake: %v, want 503 with the reason", err)
	}
}

func TestMaxAwakePutsTheLeastRecentlyUsedToSleep(t *testing.T) {
	s, srv, pub := newIdleService(t, time.Hour, 1)
	ctx := context.Background()
	// Beta sleeps first and alpha runs after it: were beta run while
	// alpha had just started, the run would rightly be refused (alpha
	// counts as in use for idleGrace after it starts).
	a, b := sleepingAndAwake(t, s)
	s.rt.Get(a.ID).idle.Reset(time.Now().Add(-time.Minute)) // alpha is idle
	woke, err := s.Wake(ctx, b.ID)
	if err != nil || woke.Status != domain.StatusRunning {
		t.Fatalf("wake beta: %+v, %v", woke, err)
	}
	got, _ := s.store.Get(ctx, a.ID)
	if got.Status != domain.StatusSleeping || !strings.Contains(got.SleepReason, "MLPANEL_MAX_AWAKE") || srv.ended(a.Pid) != "stopped" {
		t.Fatalf("alpha after waking beta with MAX_AWAKE=1: %s %q", got.Status, got.SleepReason)
	}
	if !strings.Contains(pub.Changes(), "sleeping") {
		t.Fatalf("no sleeping event: %s", pub.Changes())
	}
}

// sleepingAndAwake makes beta sleeping and then alpha running, with
// MLPANEL_MAX_AWAKE=1, so that waking beta needs alpha's place.
func sleepingAndAwake(t *testing.T, s *Service) (alpha, beta domain.Project) {
	t.Helper()
	ctx := context.Background()
	b, err := s.Create(ctx, CreateInput{Name: "beta", IdleTimeout: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, b.ID, domain.StatusSleeping)
	return runProject(t, s, "alpha"), b
}

// MLPANEL_MAX_AWAKE is a bound, not a hint: when the one awake project
// was used moments ago (a request may still be in flight), waking
// another waits for it to fall idle instead of running two servers.
func TestMaxAwakeWaitsForAnIdleProjectRatherThanExceed(t *testing.T) {
	s, _, _ := newIdleService(t, time.Hour, 1)
	ctx := context.Background()
	a, b := sleepingAndAwake(t, s)
	s.rt.Get(a.ID).idle.Reset(time.Now().Add(-idleGrace + 2*time.Second)) // used 3 s ago

	woke := make(chan error, 1)
	go func() { _, err := s.Wake(ctx, b.ID); woke <- err }()
	time.Sleep(time.Second)
	if got, _ := s.store.Get(ctx, b.ID); got.Status == domain.StatusRunning || got.Status == domain.StatusStarting {
		t.Fatalf("beta is %s while alpha, used within %s, still runs: MLPANEL_MAX_AWAKE=1 exceeded", got.Status, idleGrace)
	}
	if err := <-woke; err != nil {
		t.Fatalf("wake beta once alpha fell idle: %v", err)
	}
	if got, _ := s.store.Get(ctx, a.ID); got.Status != domain.StatusSleeping || !strings.Contains(got.SleepReason, "MLPANEL_MAX_AWAKE") {
		t.Fatalf("alpha after beta woke: %s %q", got.Status, got.SleepReason)
	}
}

// A project in use the whole time keeps its place: the wake of another
// answers 503 saying why and what to do, and nothing is stopped.
func TestMaxAwakeRefusesAWakeWhileEveryProjectIsInUse(t *testing.T) {
	s, _, _ := newIdleService(t, time.Hour, 1)
	ctx := context.Background()
	a, b := sleepingAndAwake(t, s)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // alpha's activity reports keep coming
		for {
			s.rt.Get(a.ID).idle.Reset(time.Now())
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	_, err := s.Wake(ctx, b.ID)
	if events.StatusOf(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "MLPANEL_MAX_AWAKE") {
		t.Fatalf("wake beta while alpha is in use: %v, want 503 naming MLPANEL_MAX_AWAKE", err)
	}
	if got, _ := s.store.Get(ctx, a.ID); got.Status != domain.StatusRunning {
		t.Fatalf("alpha, in use, is %s after the refused wake", got.Status)
	}
}

func TestBadIdleTimeoutIs400WithTheRule(t *testing.T) {
	s, _, _ := newIdleService(t, 0, 0)
	ctx := context.Background()
	if _, err := s.Create(ctx, CreateInput{Name: "alpha", IdleTimeout: "-5m"}); events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), domain.IdleRule) {
		t.Fatalf("create with a bad idle timeout: %v", err)
	}
	p, err := s.Create(ctx, CreateInput{Name: "alpha", IdleTimeout: "90s"})
	if err != nil || p.IdleTimeout != "90s" {
		t.Fatalf("create with 90s: %+v, %v", p, err)
	}
	if _, err := s.Update(ctx, p.ID, UpdateInput{IdleTimeout: ptr("forever")}); events.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("update with a bad idle timeout: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestStatsCountWakesTimeAsleepAndTheServersMemory(t *testing.T) {
	s, _, _ := newIdleService(t, 300*time.Millisecond, 0)
	ctx := context.Background()
	p := runProject(t, s, "alpha")
	st, err := s.Stats(ctx, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != domain.StatusRunning || st.Processes != 1 || st.PSSBytes <= 0 || st.PSSBytes > st.RSSBytes || st.LastRequestAt == nil || st.MeasuredBy != "proc" {
		t.Fatalf("running: %+v", st)
	}
	waitStatus(t, s, p.ID, domain.StatusSleeping)
	if asleep, err := s.Stats(ctx, p.Name); err != nil || asleep.MeasuredBy != MeasuredByNone || asleep.RSSBytes != 0 {
		t.Fatalf("sleeping: %+v %v, want no measurement", asleep, err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := s.Wake(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	all, err := s.AllStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := all.Projects[0]
	if got.Wakes != 1 || got.AsleepSeconds < 0.2 || all.Awake != 1 || all.TotalPSSBytes != got.PSSBytes {
		t.Fatalf("after one sleep and wake: %+v", all)
	}
}

// A start slower than the idle timeout does not put the project to sleep
// the moment it answers: its idle clock starts then.
func TestIdleClockStartsWhenTheServerAnswers(t *testing.T) {
	s, srv, _ := newIdleService(t, time.Second, 0)
	srv.healthy.Store(false)
	ctx := context.Background()
	p, err := s.Create(ctx, CreateInput{Name: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // longer than the idle timeout
	srv.healthy.Store(true)
	waitStatus(t, s, p.ID, domain.StatusRunning)
	time.Sleep(150 * time.Millisecond)
	if got, _ := s.store.Get(ctx, p.ID); got.Status != domain.StatusRunning {
		t.Fatalf("%s right after it answered, want running", got.Status)
	}
}

// Killing a server while it wakes answers the waiting request with a 503
// and leaves the project to the reconciler, which brings it back.
func TestServerKilledWhileWakingRecovers(t *testing.T) {
	s, srv, _ := newIdleService(t, time.Second, 0)
	ctx := context.Background()
	p := runProject(t, s, "alpha")
	waitStatus(t, s, p.ID, domain.StatusSleeping)
	srv.healthy.Store(false)
	errc := make(chan error, 1)
	go func() { _, err := s.Wake(ctx, p.ID); errc <- err }()
	waking := waitStatus(t, s, p.ID, domain.StatusStarting)
	for waking.Pid == 0 {
		waking, _ = s.store.Get(ctx, p.ID)
	}
	srv.crash(t, waking.Pid, "")
	if err := <-errc; events.StatusOf(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "exited unexpectedly") {
		t.Fatalf("wake of a killed server: %v, want 503 saying it exited", err)
	}
	srv.healthy.Store(true)
	back := waitStatus(t, s, p.ID, domain.StatusRunning)
	if back.Pid == waking.Pid || !srv.alive(back.Pid) {
		t.Fatalf("not recovered with a new server: %+v", back)
	}
}
