package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

type memStore struct {
	mu  sync.Mutex
	seq int64
	m   map[string]domain.Deployment
}

func (s *memStore) NextSeq(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq, nil
}
func (s *memStore) Insert(_ context.Context, d domain.Deployment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[d.ID] = d
	return nil
}
func (s *memStore) Get(_ context.Context, id string) (domain.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.m[id]
	if !ok {
		return d, ErrNotFound
	}
	return d, nil
}
func (s *memStore) Replace(ctx context.Context, d domain.Deployment) error { return s.Insert(ctx, d) }
func (s *memStore) All(context.Context) ([]domain.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []domain.Deployment
	for _, d := range s.m {
		out = append(out, d)
	}
	return out, nil
}

type fakeProjects struct{ status atomic.Value }

func (f *fakeProjects) Get(_ context.Context, ref string) (Project, error) {
	if ref != "1" {
		return Project{}, events.Errorf(http.StatusNotFound, "project %q not found", ref)
	}
	return Project{ID: "1", Name: "p", Status: f.status.Load().(string), InternalURL: "http://x"}, nil
}

type fakeRegistry struct{}

func (fakeRegistry) Resolve(_ context.Context, _, model, version string) (string, error) {
	if model != "m" || (version != "" && version != "2") {
		return "", events.Errorf(http.StatusNotFound, "no such model or version")
	}
	return "2", nil
}
func (fakeRegistry) Schema(context.Context, string, string, string) (ModelSchema, error) {
	return ModelSchema{}, nil
}

func (fakeRegistry) InputColumns(context.Context, string, string, string) ([]string, error) {
	return []string{"a"}, nil
}

type fakeServer struct {
	alive, ready atomic.Bool
	stopped      atomic.Bool
}

func (f *fakeServer) Alive(context.Context) bool { return f.alive.Load() && !f.stopped.Load() }
func (f *fakeServer) Ready(context.Context) bool {
	return f.ready.Load() && f.Alive(context.Background())
}
func (f *fakeServer) Stop(context.Context) error { f.stopped.Store(true); return nil }
func (f *fakeServer) Apply(d *domain.Deployment) {
	d.URL, d.Host, d.Port = "http://127.0.0.1:1", "127.0.0.1", 1
}
func (f *fakeServer) Local() bool { return true }

type fakeBackend struct {
	mu      sync.Mutex
	servers []*fakeServer
	startFn func() error // nil starts a server that is ready at once
}

func (b *fakeBackend) Start(context.Context, Target, func(domain.Stage)) (Server, error) {
	if b.startFn != nil {
		if err := b.startFn(); err != nil {
			return nil, err
		}
	}
	s := &fakeServer{}
	s.alive.Store(true)
	s.ready.Store(true)
	b.mu.Lock()
	b.servers = append(b.servers, s)
	b.mu.Unlock()
	return s, nil
}
func (b *fakeBackend) last() *fakeServer {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.servers[len(b.servers)-1]
}
func (b *fakeBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.servers)
}
func (b *fakeBackend) Adopt(context.Context, domain.Deployment) (Server, bool) { return nil, false }
func (b *fakeBackend) TrackingURI(p Project) string                            { return p.InternalURL }
func (b *fakeBackend) LogFile(domain.Deployment) string                        { return "/nonexistent/log" }

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

func newTestService(t *testing.T, maxFailures int) (*Service, *fakeBackend, *fakeProjects, *recPub) {
	t.Helper()
	b := &fakeBackend{}
	pr := &fakeProjects{}
	pr.status.Store("running")
	pub := &recPub{}
	s := New(Config{Interval: 20 * time.Millisecond, MaxFailures: maxFailures, StartTimeout: time.Minute},
		&memStore{m: map[string]domain.Deployment{}}, pr, fakeRegistry{},
		map[domain.Type]Backend{domain.TypeLocal: b}, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Adopt(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.Supervise(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, b, pr, pub
}

func waitStatus(t *testing.T, s *Service, id string, want domain.Status) domain.Deployment {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := s.store.Get(context.Background(), id)
		if err == nil && d.Status == want {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s is %s, want %s (error %q)", id, d.Status, want, d.Error)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLifecycle(t *testing.T) {
	s, b, _, pub := newTestService(t, 5)
	ctx := context.Background()
	d, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != "2" || d.ModelURI != "models:/m/2" || len(d.InputColumns) != 1 {
		t.Fatalf("created %+v", d)
	}
	waitStatus(t, s, d.ID, domain.StatusRunning)

	// A crash is restarted.
	b.last().alive.Store(false)
	waitStatus(t, s, d.ID, domain.StatusStarting)
	got := waitStatus(t, s, d.ID, domain.StatusRunning)
	if got.RestartCount != 1 || b.count() != 2 {
		t.Fatalf("after a crash: restart_count %d, %d starts", got.RestartCount, b.count())
	}

	if _, err := s.Stop(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, d.ID, domain.StatusStopped)
	if !b.last().stopped.Load() {
		t.Fatal("stop did not stop the server")
	}
	if _, err := s.Run(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, d.ID); events.StatusOf(err) != http.StatusConflict {
		t.Fatalf("second run: %v, want 409", err)
	}
	waitStatus(t, s, d.ID, domain.StatusRunning)
	if _, err := s.Delete(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, d.ID, domain.StatusDeleted)
	for _, op := range []func(context.Context, string) (domain.Deployment, error){s.Run, s.Stop, s.Delete, s.Get} {
		if _, err := op(ctx, d.ID); events.StatusOf(err) != http.StatusNotFound {
			t.Fatalf("on a deleted deployment: %v, want 404", err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if b.count() != 3 {
		t.Fatalf("%d starts, want 3: a deleted deployment must never start", b.count())
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	want := "created,starting,running,starting,running,stopping,stopped,starting,running,stopping,deleted"
	if got := join(pub.types); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
}

func TestCreateErrors(t *testing.T) {
	s, _, pr, _ := newTestService(t, 5)
	ctx := context.Background()
	for _, tc := range []struct {
		in   CreateInput
		want int
	}{
		{CreateInput{ProjectID: "9", ModelID: "m"}, 404},
		{CreateInput{ProjectID: "1", ModelID: "x"}, 404},
		{CreateInput{ProjectID: "1", ModelID: "m", Version: "7"}, 404},
		{CreateInput{ProjectID: "1", ModelID: "m", Type: "k8s"}, 400},
		{CreateInput{ProjectID: "1", ModelID: "m", Type: "gcp"}, 400}, // not configured
		{CreateInput{ProjectID: "1", ModelID: "m", Version: "a b"}, 400},
		{CreateInput{ModelID: "m"}, 400},
	} {
		if _, err := s.Create(ctx, tc.in); events.StatusOf(err) != tc.want {
			t.Errorf("create %+v: %v, want %d", tc.in, err, tc.want)
		}
	}
	pr.status.Store("terminated")
	if _, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m"}); events.StatusOf(err) != http.StatusConflict {
		t.Errorf("create on a stopped project: %v, want 409", err)
	}
}

func TestFailures(t *testing.T) {
	s, b, pr, _ := newTestService(t, 2)
	ctx := context.Background()

	// A permanent error fails at once, with its message.
	b.startFn = func() error { return &Permanent{Err: errors.New("Quota 'CPUS' exceeded")} }
	d, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	got := waitStatus(t, s, d.ID, domain.StatusFailed)
	if got.Error != "Quota 'CPUS' exceeded" {
		t.Fatalf("error %q", got.Error)
	}

	// A stopped project fails the start after MaxFailures attempts, saying so.
	b.startFn = nil
	pr.status.Store("terminated")
	if _, err := s.Run(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	got = waitStatus(t, s, d.ID, domain.StatusFailed)
	if want := "project p is terminated"; len(got.Error) < len(want) || got.Error[:len(want)] != want {
		t.Fatalf("error %q, want it to start with %q", got.Error, want)
	}
	// Run again once the project runs: it recovers.
	pr.status.Store("running")
	if _, err := s.Run(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if got = waitStatus(t, s, d.ID, domain.StatusRunning); got.Error != "" {
		t.Fatalf("error %q left on a running deployment", got.Error)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// A delete while the start still runs in the background wins: the server
// that comes up is stopped and the deployment never runs.
func TestDeleteDuringStart(t *testing.T) {
	s, b, _, _ := newTestService(t, 5)
	ctx := context.Background()
	b.startFn = func() error { time.Sleep(200 * time.Millisecond); return nil }
	d, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, d.ID); events.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("run after delete: %v, want 404", err)
	}
	waitStatus(t, s, d.ID, domain.StatusDeleted)
	if b.count() == 1 && !b.last().stopped.Load() {
		t.Fatal("the server started during the delete survived it")
	}
}
