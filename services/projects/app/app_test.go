package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

type memStore struct {
	mu  sync.Mutex
	seq int64
	m   map[string]domain.Project
}

func (s *memStore) NextSeq(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq, nil
}
func (s *memStore) Insert(_ context.Context, p domain.Project) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.m {
		if o.Name == p.Name && o.ID != p.ID {
			return ErrDuplicateName
		}
	}
	s.m[p.ID] = p
	return nil
}
func (s *memStore) Get(_ context.Context, id string) (domain.Project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.m[id]
	if !ok {
		return p, ErrNotFound
	}
	return p, nil
}
func (s *memStore) GetByName(_ context.Context, name string) (domain.Project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.m {
		if p.Name == name {
			return p, nil
		}
	}
	return domain.Project{}, ErrNotFound
}
func (s *memStore) Replace(ctx context.Context, p domain.Project) error {
	if _, err := s.Get(ctx, p.ID); err != nil {
		return err
	}
	return s.Insert(ctx, p)
}
func (s *memStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; !ok {
		return ErrNotFound
	}
	delete(s.m, id)
	return nil
}
func (s *memStore) All(context.Context) ([]domain.Project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []domain.Project
	for _, p := range s.m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
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

type recPub struct {
	mu    sync.Mutex
	types []string
}

func (p *recPub) Publish(_ context.Context, entity, id, change string, data any) (events.Event, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.types = append(p.types, change)
	return events.Event{}, nil
}

func (p *recPub) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.types, ",")
}

func newTestService(t *testing.T, maxFailures int) (*Service, *sleepServers, *recPub) {
	t.Helper()
	home := t.TempDir()
	srv := &sleepServers{dir: home}
	pub := &recPub{}
	s := New(Config{
		Home: home, Ports: proc.Range{Lo: 47100, Hi: 47199}, Host: "127.0.0.1",
		AdvertiseURL: func(p domain.Project) string { return "http://mlflow/" + p.Name },
		InternalURL:  func(p domain.Project) string { return "http://internal/" + p.ID },
		Interval:     10 * time.Millisecond, MaxFailures: maxFailures, StopGrace: time.Second, StopOnExit: true,
	}, &memStore{m: map[string]domain.Project{}}, srv, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := s.store.Get(context.Background(), id)
		if err == nil && p.Status == want {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("project %s is %s, want %s (last error %q)", id, p.Status, want, p.LastError)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

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
	if got := pub.String(); got != "created,created" {
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
	if got := pub.String(); got != want {
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
