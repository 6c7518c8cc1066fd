package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// sleepServers runs a real process (sleep) for each "tracking server";
// whether it answers /health is the test's to say.
type sleepServers struct {
	dir      string
	healthy  atomic.Bool
	mu       sync.Mutex
	startErr error
	starts   atomic.Int32
}

func (f *sleepServers) failWith(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startErr = err
}

func (f *sleepServers) Start(p domain.Project) (*proc.Process, error) {
	f.starts.Add(1)
	f.mu.Lock()
	err := f.startErr
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return proc.Start(proc.Spec{Path: "sleep", Args: []string{"60"}, LogFile: f.LogFile(p)})
}
func (f *sleepServers) Healthy(context.Context, domain.Project) bool { return f.healthy.Load() }
func (f *sleepServers) LogFile(p domain.Project) string {
	return filepath.Join(f.dir, "project-"+p.ID+".log")
}

func newTestService(t *testing.T, maxFailures int) (*Service, *sleepServers, *eventstest.Publisher) {
	t.Helper()
	home := t.TempDir()
	srv := &sleepServers{dir: home}
	pub := &eventstest.Publisher{}
	s := New(Config{
		Home: home, Ports: proc.Range{Lo: 47100, Hi: 47199}, Host: "127.0.0.1",
		AdvertiseURL: func(p domain.Project) string { return "http://mlflow/" + p.Name },
		InternalURL:  func(p domain.Project) string { return "http://internal/" + p.ID },
		Interval:     10 * time.Millisecond, MaxFailures: maxFailures, StopGrace: time.Second, StopOnExit: true,
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

// alive reports whether pid runs. A zombie (killed, not yet reaped by
// the goroutine that waits on it) does not count: it runs nothing.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func TestCreateValidatesAndKeepsNamesUnique(t *testing.T) {
	s, _, pub := newTestService(t, 5)
	ctx := context.Background()
	p, err := s.Create(ctx, CreateInput{Name: "alpha", Description: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "1" || p.Status != domain.StatusTerminated || p.Port != 47100 || p.MlflowURI != "http://mlflow/alpha" {
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
	if err != nil || q.Port != 47101 {
		t.Fatalf("second project: port %d, %v; want the next port", q.Port, err)
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
	if got.Status != domain.StatusStarting || !alive(got.Pid) {
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
	if err := syscall.Kill(-running.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
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
	if alive(again.Pid) {
		t.Fatal("terminate left the server running")
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
	if err := os.WriteFile(srv.LogFile(p), []byte("one\ntwo\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
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
