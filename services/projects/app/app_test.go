package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/events/eventstest"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile/recordstest"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// memStore is the projects store in memory, with the unique name index.
type memStore struct {
	*recordstest.Mem[domain.Project]
}

func newMemStore() memStore {
	m := recordstest.New(func(p domain.Project) string { return p.ID }, ErrNotFound)
	m.Check = func(others []domain.Project, p domain.Project) error {
		for _, o := range others {
			if o.Name == p.Name {
				return ErrDuplicateName
			}
		}
		return nil
	}
	return memStore{m}
}

func (s memStore) GetByName(_ context.Context, name string) (domain.Project, error) {
	return s.Find(func(p domain.Project) bool { return p.Name == name })
}

// fakeRuntime is a Runtime in memory, for the use cases above the seam:
// a "server" is a record with a made-up pid that the test can crash,
// move to another address or have restarted behind the service's back,
// as a process table or a cluster engine would. Whether a server
// answers /health is the test's to say, and it answers only at the
// address the runtime reports, so a service that probes a stale
// internalUrl never sees it running.
type fakeRuntime struct {
	healthy atomic.Bool
	starts  atomic.Int32
	purged  atomic.Int32

	mu       sync.Mutex
	startErr error
	adoptErr error
	nextPid  int
	servers  []*fakeServer // every one ever started, oldest first
	logs     map[string]string
}

func newFakeRuntime() *fakeRuntime { return &fakeRuntime{nextPid: 1000, logs: map[string]string{}} }

// fakeServer is one server of the fake runtime.
type fakeServer struct {
	f        *fakeRuntime
	project  string
	pid      int
	alive    bool
	addr     string
	restarts int
	reason   string
	waiting  bool
	ended    string // "stopped" or "removed"
}

func (f *fakeRuntime) failWith(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startErr = err
}

func (f *fakeRuntime) Start(_ context.Context, p domain.Project) (Server, error) {
	f.starts.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[p.ID] += fmt.Sprintf("==> start %d\n", f.starts.Load())
	if f.startErr != nil {
		f.logs[p.ID] += f.startErr.Error() + "\n"
		return nil, f.startErr
	}
	if live := f.liveOf(p.ID); live != nil {
		return live, nil // idempotent, as the contract asks
	}
	f.nextPid++
	srv := &fakeServer{f: f, project: p.ID, pid: f.nextPid, alive: true, addr: p.InternalURL}
	f.servers = append(f.servers, srv)
	return srv, nil
}

func (f *fakeRuntime) Adopt(_ context.Context, p domain.Project) (Server, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.adoptErr != nil {
		return nil, f.adoptErr
	}
	if live := f.liveOf(p.ID); live != nil {
		return live, nil
	}
	return nil, nil
}

// liveOf is the live server of project id; the caller holds f.mu.
func (f *fakeRuntime) liveOf(id string) *fakeServer {
	for _, srv := range f.servers {
		if srv.project == id && srv.alive {
			return srv
		}
	}
	return nil
}

func (f *fakeRuntime) Healthy(_ context.Context, p domain.Project) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	live := f.liveOf(p.ID)
	return f.healthy.Load() && live != nil && live.addr != "" && live.addr == p.InternalURL
}

func (f *fakeRuntime) Logs(_ context.Context, p domain.Project, n int) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	lines := strings.Split(strings.TrimRight(f.logs[p.ID], "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), nil
}

func (f *fakeRuntime) Usage(_ context.Context, p domain.Project) (Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.liveOf(p.ID) == nil {
		return Usage{}, nil
	}
	return Usage{Processes: 1, PSSBytes: 30 << 20, RSSBytes: 90 << 20, CPUSeconds: 1.5}, nil
}

func (f *fakeRuntime) Purge(context.Context, domain.Project) error {
	f.purged.Add(1)
	return nil
}

func (s *fakeServer) Observe(context.Context) Observation {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return Observation{Alive: s.alive, Address: s.addr, Restarts: s.restarts, Reason: s.reason, Waiting: s.waiting}
}

func (s *fakeServer) end(how string) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if s.alive {
		s.alive, s.ended = false, how
	}
	return nil
}

func (s *fakeServer) Stop(context.Context) error   { return s.end("stopped") }
func (s *fakeServer) Remove(context.Context) error { return s.end("removed") }
func (s *fakeServer) Ref() Ref                     { return Ref{Pid: s.pid, PidStart: uint64(s.pid) * 7} }

// server is the server with this pid; nil if none was ever started.
func (f *fakeRuntime) server(pid int) *fakeServer {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, srv := range f.servers {
		if srv.pid == pid {
			return srv
		}
	}
	return nil
}

// alive reports whether the server with this pid runs.
func (f *fakeRuntime) alive(pid int) bool {
	srv := f.server(pid)
	if srv == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return srv.alive
}

// crash makes the server with this pid vanish, as kill -9 or a lost
// allocation would, with the runtime's reason.
func (f *fakeRuntime) crash(t *testing.T, pid int, reason string) {
	t.Helper()
	srv := f.server(pid)
	if srv == nil {
		t.Fatalf("no server with pid %d", pid)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	srv.alive, srv.reason = false, reason
}

// set changes what the runtime reports of the server with this pid.
func (f *fakeRuntime) set(t *testing.T, pid int, change func(*fakeServer)) {
	t.Helper()
	srv := f.server(pid)
	if srv == nil {
		t.Fatalf("no server with pid %d", pid)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	change(srv)
}

// ended says how the server with this pid was ended ("" while it runs).
func (f *fakeRuntime) ended(pid int) string {
	srv := f.server(pid)
	if srv == nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return srv.ended
}

func newTestService(t *testing.T, maxFailures int) (*Service, *fakeRuntime, *eventstest.Publisher) {
	t.Helper()
	return newTestServiceOn(t, maxFailures, proc.Range{Lo: 47100, Hi: 47199})
}

func newTestServiceOn(t *testing.T, maxFailures int, ports proc.Range) (*Service, *fakeRuntime, *eventstest.Publisher) {
	t.Helper()
	home := t.TempDir()
	srv := newFakeRuntime()
	pub := &eventstest.Publisher{}
	s := New(Config{
		Home: home, Ports: ports, Host: "127.0.0.1",
		AdvertiseURL: func(p domain.Project) string { return "http://mlflow/" + p.Name },
		InternalURL:  func(p domain.Project) string { return "http://internal/" + p.ID },
		Interval:     10 * time.Millisecond, MaxFailures: maxFailures, StopOnExit: true,
	}, newMemStore(), srv, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Adopt(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.Supervise(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, srv, pub
}

func waitStatus(t *testing.T, s *Service, id string, want domain.Status) domain.Project {
	t.Helper()
	return recordstest.WaitFor(t, s.store.Get, id, func(p domain.Project) bool { return p.Status == want },
		func(p domain.Project) string {
			return fmt.Sprintf("is %s, want %s (last error %q)", p.Status, want, p.LastError)
		})
}

func TestCreatePassesOverAPortAnotherProcessHolds(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	s, _, _ := newTestServiceOn(t, 5, proc.Range{Lo: port, Hi: port + 20})
	p, err := s.Create(context.Background(), CreateInput{Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Port == port || p.Port > port+20 {
		t.Fatalf("got port %d; want one of %d-%d other than %d, which another process listens on", p.Port, port, port+20, port)
	}
}

func TestCreateValidatesAndKeepsNamesUnique(t *testing.T) {
	s, _, pub := newTestService(t, 5)
	ctx := context.Background()
	p, err := s.Create(ctx, CreateInput{Name: "alpha", Description: "first"})
	if err != nil {
		t.Fatal(err)
	}
	// The range lies in Linux's ephemeral ports, so another process's
	// outgoing connection may hold any one of them: a project gets the lowest
	// port that is free, not necessarily the first of the range.
	inRange := func(port int) bool { return port >= 47100 && port <= 47199 }
	if p.ID != "1" || p.Status != domain.StatusTerminated || !inRange(p.Port) || p.MlflowURI != "http://mlflow/alpha" {
		t.Fatalf("created %+v", p)
	}
	if _, err := os.Stat(filepath.Join(p.Path, "artifacts")); err != nil {
		t.Fatalf("the project's folder was not made: %v", err)
	}
	if _, err := s.Create(ctx, CreateInput{Name: "alpha"}); events.StatusOf(err) != http.StatusConflict {
		t.Fatalf("duplicate name: %v, want 409", err)
	}
	if _, err := s.Create(ctx, CreateInput{Name: "1bad"}); events.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("bad name: %v, want 400", err)
	}
	q, err := s.Create(ctx, CreateInput{Name: "beta"})
	if err != nil || !inRange(q.Port) || q.Port <= p.Port {
		t.Fatalf("second project: port %d, %v; want a port of the range above %d", q.Port, err, p.Port)
	}
	if _, err := s.Update(ctx, "beta", UpdateInput{Name: &p.Name}); events.StatusOf(err) != http.StatusConflict {
		t.Fatalf("rename onto a taken name: %v, want 409", err)
	}
	if got, err := s.Find(ctx, "alpha"); err != nil || got.ID != "1" {
		t.Fatalf("find by name: %+v, %v", got, err)
	}
	if _, err := s.Find(ctx, "nope"); events.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("find unknown: %v, want 404", err)
	}
	if got := pub.Changes(); got != "created,created" {
		t.Fatalf("events %s", got)
	}
}

// Run, crash, restart, terminate, archive, restore, delete: what a user
// sees of the supervised server at each step.
func TestLifecycle(t *testing.T) {
	s, srv, pub := newTestService(t, 5)
	ctx := context.Background()
	p, err := s.Create(ctx, CreateInput{Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Run(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != domain.StatusStarting || !srv.alive(got.Pid) {
		t.Fatalf("after run: %s pid %d, want starting with a live server", got.Status, got.Pid)
	}
	if _, err := s.Run(ctx, p.ID); events.StatusOf(err) != http.StatusConflict {
		t.Fatalf("second run: %v, want 409", err)
	}
	srv.healthy.Store(true)
	running := waitStatus(t, s, p.ID, domain.StatusRunning)
	if h, err := s.Healthcheck(ctx, p.ID); err != nil || h.Pid != running.Pid {
		t.Fatalf("healthcheck: %+v, %v", h, err)
	}

	// A crash is restarted, with a new process.
	srv.crash(t, running.Pid, "")
	deadline := time.Now().Add(10 * time.Second)
	var again domain.Project
	for {
		again, _ = s.store.Get(ctx, p.ID)
		if again.Status == domain.StatusRunning && again.Pid != running.Pid && again.Pid != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not restarted after a crash: %+v", again)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if again.RestartCount != 1 || srv.starts.Load() != 2 {
		t.Fatalf("after a crash: restart count %d, %d starts", again.RestartCount, srv.starts.Load())
	}

	if _, err := s.Delete(ctx, p.ID); events.StatusOf(err) != http.StatusConflict {
		t.Fatalf("delete while running: %v, want 409", err)
	}
	stopped, err := s.Terminate(ctx, p.ID)
	if err != nil || stopped.Status != domain.StatusTerminated || stopped.Pid != 0 {
		t.Fatalf("terminate: %+v, %v", stopped, err)
	}
	if srv.alive(again.Pid) || srv.ended(again.Pid) != "removed" {
		t.Fatalf("terminate left the server %q, want removed", srv.ended(again.Pid))
	}
	if _, err := s.Healthcheck(ctx, p.ID); events.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("healthcheck of a stopped project: %v, want 400", err)
	}
	if _, err := s.Archive(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, p.ID); events.StatusOf(err) != http.StatusConflict {
		t.Fatalf("run an archived project: %v, want 409", err)
	}
	if _, err := s.Restore(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	gone, err := s.Delete(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("files still at %s after delete", p.Path)
	}
	if _, err := os.Stat(gone.Path); err != nil || !strings.Contains(gone.Path, "trash") {
		t.Fatalf("files not in the trash: %s, %v", gone.Path, err)
	}
	if _, err := s.Find(ctx, p.ID); events.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("get after delete: %v, want 404", err)
	}
	want := "created,starting,running,starting,running,terminated,archived,restored,deleted"
	if got := pub.Changes(); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
}

// A server that cannot start is retried with backoff, then the project is
// failed with the reason and its log tail; a user's run starts over.
func TestFailsAfterMaxFailures(t *testing.T) {
	s, srv, _ := newTestService(t, 2)
	ctx := context.Background()
	p, err := s.Create(ctx, CreateInput{Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	srv.failWith(errors.New("mlflow: no such file"))
	if _, err := s.Run(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	failed := waitStatus(t, s, p.ID, domain.StatusFailed)
	if !strings.Contains(failed.LastError, "mlflow: no such file (2 times in a row)") {
		t.Fatalf("last error %q does not give the reason and the count", failed.LastError)
	}
	if n := srv.starts.Load(); n != 2 {
		t.Fatalf("%d starts, want MaxFailures = 2", n)
	}
	srv.failWith(nil)
	srv.healthy.Store(true)
	if _, err := s.Run(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if got := waitStatus(t, s, p.ID, domain.StatusRunning); got.LastError != "" {
		t.Fatalf("error %q left on a running project", got.LastError)
	}
}

func TestLogs(t *testing.T) {
	s, srv, _ := newTestService(t, 5)
	ctx := context.Background()
	p, err := s.Create(ctx, CreateInput{Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := s.Logs(ctx, p.ID, 10); err != nil || l.Lines != 0 {
		t.Fatalf("logs of a project that never ran: %+v, %v", l, err)
	}
	srv.mu.Lock()
	srv.logs[p.ID] = "one\ntwo\nthree\n"
	srv.mu.Unlock()
	if l, err := s.Logs(ctx, "alpha", 2); err != nil || l.Log != "two\nthree" || l.Lines != 2 {
		t.Fatalf("last 2 lines: %+v, %v", l, err)
	}
}

// A start that retrying cannot fix (the database of a project that ran
// before is gone) fails the project at once, and the user's run says why.
func TestTerminalStartFailsAtOnce(t *testing.T) {
	s, srv, _ := newTestService(t, 5)
	ctx := context.Background()
	p, err := s.Create(ctx, CreateInput{Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	srv.failWith(reconcile.Terminal(errors.New("the tracking database is missing")))
	_, err = s.Run(ctx, p.ID)
	if events.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "the tracking database is missing") {
		t.Fatalf("run: %v, want 409 saying the database is missing", err)
	}
	got := waitStatus(t, s, p.ID, domain.StatusFailed)
	if got.LastError != "the tracking database is missing" || got.RestartCount != 0 {
		t.Fatalf("failed project: %q, restart count %d", got.LastError, got.RestartCount)
	}
	if n := srv.starts.Load(); n != 1 {
		t.Fatalf("%d starts, want 1: a terminal error is not retried", n)
	}
}
