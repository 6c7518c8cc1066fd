package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// projectEvents records each published change with the project it
// carries, as the gateway's resolver receives them.
type projectEvents struct {
	mu   sync.Mutex
	list []string // "change internalUrl status"
}

func (e *projectEvents) Publish(_ context.Context, _, _, change string, data any) (events.Event, error) {
	p, _ := data.(domain.Project)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, fmt.Sprintf("%s %s %s", change, p.InternalURL, p.Status))
	return events.Event{}, nil
}

func (e *projectEvents) has(want string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, got := range e.list {
		if got == want {
			return true
		}
	}
	return false
}

func (e *projectEvents) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.list, "; ")
}

// seamService is a service over store and rt, supervised until the test
// ends or stop is called; StopOnExit is off, as on a cluster runtime.
func seamService(t *testing.T, store Store, rt Runtime, pub Publisher, maxFailures int) (s *Service, stop func()) {
	t.Helper()
	s = New(Config{
		Home: t.TempDir(), Ports: proc.Range{Lo: 47300, Hi: 47399}, Host: "127.0.0.1",
		AdvertiseURL: func(p domain.Project) string { return "http://mlflow/" + p.Name },
		InternalURL:  func(p domain.Project) string { return "http://node-a:5000/projects/" + p.ID + "/mlflow" },
		Interval:     10 * time.Millisecond, MaxFailures: maxFailures, StartTimeout: 5 * time.Second,
	}, store, rt, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Adopt(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.Supervise(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return s, stop
}

func waitFor(t *testing.T, s *Service, id, what string, ok func(domain.Project) bool) domain.Project {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := s.store.Get(context.Background(), id)
		if err == nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("project %s never %s: %+v", id, what, p)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A server the runtime moves to another node keeps its project reachable:
// while it has no address the project shows starting (the engine's
// restart counted, with its reason), and once it answers at the new
// address the project is running with that internalUrl, published so
// the gateway proxies there. A move without a gap is published too.
func TestServerMovedByTheRuntimeIsFollowed(t *testing.T) {
	rt := newFakeRuntime()
	rt.healthy.Store(true)
	pub := &projectEvents{}
	s, _ := seamService(t, newMemStore(), rt, pub, 5)
	ctx := context.Background()
	running := runProject(t, s, "alpha")
	first := running.InternalURL

	// The node is lost: the engine reschedules, no address for now.
	rt.set(t, running.Pid, func(srv *fakeServer) { srv.addr, srv.restarts, srv.reason = "", 1, "node lost" })
	moving := waitStatus(t, s, running.ID, domain.StatusStarting)
	if moving.RestartCount != 1 || moving.LastError != "node lost" {
		t.Fatalf("while rescheduled: restart count %d, last error %q; want 1 and the runtime's reason", moving.RestartCount, moving.LastError)
	}
	second := "http://node-b:5000/projects/" + running.ID + "/mlflow"
	rt.set(t, running.Pid, func(srv *fakeServer) { srv.addr = second })
	back := waitFor(t, s, running.ID, "running at the new address", func(p domain.Project) bool {
		return p.Status == domain.StatusRunning && p.InternalURL == second
	})
	if back.LastError != "" || back.RestartCount != 1 {
		t.Fatalf("back on node b: %+v", back)
	}
	// Moved again at once, no gap: the address still follows.
	third := "http://node-c:5000/projects/" + running.ID + "/mlflow"
	rt.set(t, running.Pid, func(srv *fakeServer) { srv.addr = third })
	waitFor(t, s, running.ID, "at the third address", func(p domain.Project) bool {
		return p.Status == domain.StatusRunning && p.InternalURL == third
	})
	// What the gateway's resolver receives, in order of the moves.
	for _, want := range []string{
		"starting " + first + " starting", "updated " + second + " starting",
		"running " + second + " running", "updated " + third + " running",
	} {
		if !pub.has(want) {
			t.Errorf("no event %q: %s", want, pub)
		}
	}
	if got, _ := s.Find(ctx, running.ID); got.InternalURL != third || rt.starts.Load() != 1 {
		t.Fatalf("after two moves: %s, %d starts; want the runtime's address and no start of ours", got.InternalURL, rt.starts.Load())
	}
}

// Restarts the runtime makes on its own are crashes like ours: counted,
// and after MLPANEL_MAX_FAILURES in a row the project fails with the
// reason and the log tail, and the crash-looping server is removed.
func TestRestartsByTheRuntimeCountAsCrashes(t *testing.T) {
	rt := newFakeRuntime()
	rt.healthy.Store(true)
	s, _ := seamService(t, newMemStore(), rt, &projectEvents{}, 3)
	running := runProject(t, s, "alpha")
	for i := 1; i <= 3; i++ {
		rt.set(t, running.Pid, func(srv *fakeServer) { srv.restarts, srv.reason = i, "OOMKilled" })
		if i < 3 {
			waitFor(t, s, running.ID, fmt.Sprintf("restarted %d times", i), func(p domain.Project) bool { return p.RestartCount == i })
		}
	}
	failed := waitStatus(t, s, running.ID, domain.StatusFailed)
	if failed.RestartCount != 3 || !strings.Contains(failed.LastError, "OOMKilled (3 times in a row)") || !strings.Contains(failed.LastError, "==> start 1") {
		t.Fatalf("failed: restart count %d, last error %q; want 3 and the reason with the log tail", failed.RestartCount, failed.LastError)
	}
	if rt.ended(running.Pid) != "removed" || failed.Pid != 0 {
		t.Fatalf("the crash-looping server was %q (pid on record %d), want removed", rt.ended(running.Pid), failed.Pid)
	}
	if rt.starts.Load() != 1 {
		t.Fatalf("%d starts: the runtime restarts its own servers, the service must not start another", rt.starts.Load())
	}
}

// A server that is gone for good is a crash with the runtime's reason;
// it is removed (a cluster may keep the dead object) and started anew.
func TestServerGoneIsRemovedAndStartedAgain(t *testing.T) {
	rt := newFakeRuntime()
	rt.healthy.Store(true)
	s, _ := seamService(t, newMemStore(), rt, &projectEvents{}, 5)
	ctx := context.Background()
	running := runProject(t, s, "alpha")
	rt.crash(t, running.Pid, "allocation failed: exit code 137")
	again := waitFor(t, s, running.ID, "running on a new server", func(q domain.Project) bool {
		return q.Status == domain.StatusRunning && q.Pid != running.Pid && q.Pid != 0
	})
	if again.RestartCount != 1 || rt.starts.Load() != 2 {
		t.Fatalf("after the server was lost: restart count %d, %d starts", again.RestartCount, rt.starts.Load())
	}
	logs, _ := s.Logs(ctx, running.ID, 10)
	if !strings.Contains(logs.Log, "==> start 2") {
		t.Fatalf("logs %q: want the runtime's log of both starts", logs.Log)
	}
}

// A restarted service adopts the servers its runtime kept running: no
// second start, the project stays running on the same server, and a
// server kept for a project that no longer should run is removed.
// Deleting a project purges what the runtime kept for it.
func TestRestartedServiceAdoptsThroughTheRuntime(t *testing.T) {
	rt := newFakeRuntime()
	rt.healthy.Store(true)
	store := newMemStore()
	pub := &projectEvents{}
	first, stop := seamService(t, store, rt, pub, 5)
	ctx := context.Background()
	var ps []domain.Project
	for _, name := range []string{"alpha", "beta"} {
		p, err := first.Create(ctx, CreateInput{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := first.Run(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, waitStatus(t, first, p.ID, domain.StatusRunning))
	}
	stop() // the panel exits; StopOnExit is off, the servers stay

	// Meanwhile beta was terminated behind the service's back in its
	// record only (the service died between the two).
	beta := ps[1]
	beta.DesiredState = domain.DesiredStopped
	if err := store.Replace(ctx, beta); err != nil {
		t.Fatal(err)
	}

	rt.mu.Lock()
	rt.adoptErr = errors.New("connection refused")
	rt.mu.Unlock()
	refused := New(first.cfg, store, rt, pub, first.log)
	if err := refused.Adopt(ctx); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("adopt with the runtime unreachable: %v, want its error (never a second copy)", err)
	}
	rt.mu.Lock()
	rt.adoptErr = nil
	rt.mu.Unlock()

	second, _ := seamService(t, store, rt, pub, 5)
	alpha := ps[0]
	time.Sleep(100 * time.Millisecond) // ten reconcile ticks
	got, err := second.Find(ctx, alpha.ID)
	if err != nil || got.Status != domain.StatusRunning || got.Pid != alpha.Pid || !rt.alive(alpha.Pid) {
		t.Fatalf("alpha after the restart: %+v, %v; want running on the same server", got, err)
	}
	if h, err := second.Healthcheck(ctx, alpha.ID); err != nil || h.Pid != alpha.Pid {
		t.Fatalf("healthcheck of the adopted server: %+v, %v", h, err)
	}
	waitStatus(t, second, beta.ID, domain.StatusTerminated)
	if rt.ended(beta.Pid) != "removed" {
		t.Fatalf("beta's server after the restart: %q, want removed", rt.ended(beta.Pid))
	}
	if n := rt.starts.Load(); n != 2 {
		t.Fatalf("%d starts in all, want 2: adoption starts nothing", n)
	}
	if _, err := second.Delete(ctx, beta.ID); err != nil {
		t.Fatal(err)
	}
	if rt.purged.Load() != 1 {
		t.Fatalf("delete purged %d times, want once", rt.purged.Load())
	}
}

// A server the runtime holds back (the node with its volume is down)
// waits as long as that lasts: the project stays starting with the
// runtime's reason, past the start timeout, with no crash counted and
// no new server started elsewhere; when the node is back it runs again.
func TestServerWaitingForItsNodeOutlastsTheStartTimeout(t *testing.T) {
	rt := newFakeRuntime()
	rt.healthy.Store(true)
	s := New(Config{
		Home: t.TempDir(), Ports: proc.Range{Lo: 47300, Hi: 47399}, Host: "127.0.0.1",
		AdvertiseURL: func(p domain.Project) string { return "http://mlflow/" + p.Name },
		InternalURL:  func(p domain.Project) string { return "http://node-a:5000/projects/" + p.ID + "/mlflow" },
		Interval:     10 * time.Millisecond, MaxFailures: 2, StartTimeout: 300 * time.Millisecond,
	}, newMemStore(), rt, &projectEvents{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Supervise(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	p, err := s.Create(ctx, CreateInput{Name: "pinned"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	running := waitStatus(t, s, p.ID, domain.StatusRunning)

	const why = "waiting for node node-1 (down), which holds the project's volume"
	rt.set(t, running.Pid, func(srv *fakeServer) { srv.addr, srv.restarts, srv.reason, srv.waiting = "", 1, why, true })
	waitStatus(t, s, p.ID, domain.StatusStarting)
	time.Sleep(5 * 300 * time.Millisecond) // five start timeouts
	held, _ := s.Find(ctx, p.ID)
	if held.Status != domain.StatusStarting || held.LastError != why || held.RestartCount != 1 || rt.starts.Load() != 1 {
		t.Fatalf("held back past the start timeout: status %s, last error %q, %d restarts, %d starts; want starting with the reason, the one restart, no new start",
			held.Status, held.LastError, held.RestartCount, rt.starts.Load())
	}
	if !rt.alive(running.Pid) {
		t.Fatal("the waiting server was removed")
	}

	back := "http://node-a:5001/projects/" + p.ID + "/mlflow"
	rt.set(t, running.Pid, func(srv *fakeServer) { srv.addr, srv.waiting = back, false })
	waitFor(t, s, p.ID, "running again on its node", func(p domain.Project) bool {
		return p.Status == domain.StatusRunning && p.InternalURL == back && p.LastError == ""
	})
}
