package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/events/eventstest"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile/recordstest"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

type fakeProjects struct {
	status atomic.Value
	wakes  atomic.Int32
}

func (f *fakeProjects) Get(_ context.Context, ref string) (Project, error) {
	if ref != "1" {
		return Project{}, events.Errorf(http.StatusNotFound, "project %q not found", ref)
	}
	return Project{ID: "1", Name: "p", Status: f.status.Load().(string), InternalURL: "http://x"}, nil
}

// Wake and StartWaking wake a sleeping project at once.
func (f *fakeProjects) Wake(ctx context.Context, ref string) (Project, error) {
	if err := f.StartWaking(ctx, ref); err != nil {
		return Project{}, err
	}
	return f.Get(ctx, ref)
}

func (f *fakeProjects) StartWaking(_ context.Context, ref string) error {
	if ref != "1" {
		return events.Errorf(http.StatusNotFound, "project %q not found", ref)
	}
	f.wakes.Add(1)
	f.status.CompareAndSwap("sleeping", "running")
	return nil
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

// aliasVersion is where the fake registry's alias "champion" points ("" none).
var aliasVersion atomic.Value

func (fakeRegistry) Alias(_ context.Context, _, model, alias string) (string, bool, error) {
	v, _ := aliasVersion.Load().(string)
	if model != "m" || alias != "champion" || v == "" {
		return "", false, nil
	}
	return v, true, nil
}

func (fakeRegistry) ServingExample(context.Context, string, string, string) ([]byte, error) {
	return []byte(`{"inputs": [1]}`), nil
}

func (fakeRegistry) InputColumns(context.Context, string, string, string) ([]string, error) {
	return []string{"a"}, nil
}

type fakeServer struct {
	alive, ready atomic.Bool
	stopped      atomic.Bool
	predictErr   error
	version      string
	remote       bool // runs on a cluster, not as this machine's process
}

func (f *fakeServer) Alive(context.Context) bool { return f.alive.Load() && !f.stopped.Load() }
func (f *fakeServer) Ready(context.Context) bool {
	return f.ready.Load() && f.Alive(context.Background())
}
func (f *fakeServer) Stop(context.Context) error { f.stopped.Store(true); return nil }
func (f *fakeServer) Apply(d *domain.Deployment) {
	d.URL, d.Host, d.Port = "http://127.0.0.1:1", "127.0.0.1", 1
}
func (f *fakeServer) Local() bool { return !f.remote }

// Usage is what a measured runtime (a process group, an allocation)
// reports of a running server.
func (f *fakeServer) Usage(context.Context) (proc.Usage, error) {
	if !f.Alive(context.Background()) {
		return proc.Usage{}, ErrNoUsage
	}
	return proc.Usage{Processes: 2, PSSBytes: 40 << 20, RSSBytes: 90 << 20, CPUSeconds: 2.5, MeasuredBy: proc.MeasuredByProc}, nil
}
func (f *fakeServer) Predict(context.Context, []byte) error {
	if f.predictErr != nil {
		return f.predictErr
	}
	return nil
}

type fakeBackend struct {
	mu      sync.Mutex
	servers []*fakeServer
	startFn func() error // nil starts a server that is ready at once
	// adoptable are servers an earlier run left, by pid.
	adoptable map[int]*fakeServer
	remote    bool // its servers run on a cluster (Local() false)
}

func (b *fakeBackend) Start(_ context.Context, t Target, _ func(domain.Stage)) (Server, error) {
	if b.startFn != nil {
		if err := b.startFn(); err != nil {
			return nil, err
		}
	}
	s := &fakeServer{version: t.Deployment.Version, remote: b.remote}
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

// Adopt finds the servers of adoptable by pid (a restarted deployer's
// view of the processes a killed one left).
func (b *fakeBackend) Adopt(_ context.Context, d domain.Deployment) (Server, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	srv, ok := b.adoptable[d.Pid]
	return srv, ok
}
func (b *fakeBackend) TrackingURI(p Project) string     { return p.InternalURL }
func (b *fakeBackend) LogFile(domain.Deployment) string { return "/nonexistent/log" }

func newTestService(t *testing.T, maxFailures int) (*Service, *fakeBackend, *fakeProjects, *eventstest.Publisher) {
	t.Helper()
	return newTestServiceWith(t, maxFailures, &fakeBackend{}, nil)
}

// newTestServiceWith starts the service on a store holding seed, as a
// deployer restarted over an earlier run's records.
func newTestServiceWith(t *testing.T, maxFailures int, b *fakeBackend, seed []domain.Deployment) (*Service, *fakeBackend, *fakeProjects, *eventstest.Publisher) {
	t.Helper()
	pr := &fakeProjects{}
	pr.status.Store("running")
	pub := &eventstest.Publisher{}
	s := New(Config{Interval: 20 * time.Millisecond, MaxFailures: maxFailures, StartTimeout: time.Minute,
		AliasResync: func() time.Duration { return 50 * time.Millisecond }},
		recordstest.New(func(d domain.Deployment) string { return d.ID }, ErrNotFound), pr, fakeRegistry{},
		map[domain.Type]Backend{domain.TypeLocal: b}, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, d := range seed {
		if err := s.store.Insert(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
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
	return recordstest.WaitFor(t, s.store.Get, id, func(d domain.Deployment) bool { return d.Status == want },
		func(d domain.Deployment) string {
			return fmt.Sprintf("is %s, want %s (error %q)", d.Status, want, d.Error)
		})
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
	// However often it is reconciled, a deleted deployment never starts:
	// reconcile it by hand, then wait for any background step it began.
	for i := 0; i < 3; i++ {
		unlock := s.ctl.Lock(d.ID)
		_, err := s.Reconcile(ctx, d.ID)
		unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	s.bg.Wait()
	if b.count() != 3 {
		t.Fatalf("%d starts, want 3: a deleted deployment must never start", b.count())
	}
	want := "created,starting,running,starting,running,stopping,stopped,starting,running,stopping,deleted"
	if got := pub.Changes(); got != want {
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

	// A stopped project is a dependency that is not ready: the start
	// waits, saying why, however often it is looked at, and is never
	// counted as a crash nor failed.
	b.startFn = nil
	pr.status.Store("terminated")
	if _, err := s.Run(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ = s.store.Get(ctx, d.ID)
		if strings.HasPrefix(got.Error, "waiting for project p, which is terminated") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s: %q, want it waiting for project p", got.Status, got.Error)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := 0; i < 5; i++ { // more looks than MaxFailures
		unlock := s.ctl.Lock(d.ID)
		s.rt.Get(d.ID).waitUntil = time.Time{}
		res, err := s.Reconcile(ctx, d.ID)
		unlock()
		if err != nil || res.RequeueAfter <= 0 {
			t.Fatalf("reconcile while waiting: %+v, %v; want a requeue", res, err)
		}
	}
	got, _ = s.store.Get(ctx, d.ID)
	if got.Status != domain.StatusStarting || got.RestartCount != 0 || b.count() != 0 {
		t.Fatalf("while the project is stopped: status %s, restart_count %d, %d starts; want starting, 0, 0", got.Status, got.RestartCount, b.count())
	}
	// The project runs again: the deployment follows by itself.
	pr.status.Store("running")
	if got = waitStatus(t, s, d.ID, domain.StatusRunning); got.Error != "" {
		t.Fatalf("error %q left on a running deployment", got.Error)
	}
}

// A delete while the start still runs in the background wins: the server
// that comes up is stopped and the deployment never runs.
func TestDeleteDuringStart(t *testing.T) {
	s, b, _, pub := newTestService(t, 5)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	b.startFn = func() error { close(started); <-release; return nil }
	d, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	<-started // the start is in flight
	if _, err := s.Delete(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, d.ID); events.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("run after delete: %v, want 404", err)
	}
	close(release) // the server comes up after the delete
	waitStatus(t, s, d.ID, domain.StatusDeleted)
	s.bg.Wait()
	if n := b.count(); n != 1 {
		t.Fatalf("%d servers started, want exactly the one in flight", n)
	}
	if !b.last().stopped.Load() {
		t.Fatal("the server started during the delete survived it")
	}
	for _, typ := range strings.Split(pub.Changes(), ",") {
		if typ == string(domain.StatusRunning) {
			t.Fatalf("events %s: a deleted deployment was reported running", pub.Changes())
		}
	}
}

// A deployment of a sleeping project wakes it: at create (its registry
// resolves the model) and when the model server (re)starts.
func TestSleepingProjectIsWokenForItsDeployment(t *testing.T) {
	s, _, pr, _ := newTestService(t, 5)
	ctx := context.Background()
	pr.status.Store("sleeping")
	d, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m"})
	if err != nil {
		t.Fatalf("create on a sleeping project: %v", err)
	}
	waitStatus(t, s, d.ID, domain.StatusRunning)
	if _, err := s.Stop(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, d.ID, domain.StatusStopped)
	pr.status.Store("sleeping")
	before := pr.wakes.Load()
	if _, err := s.Run(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, d.ID, domain.StatusRunning)
	if pr.wakes.Load() == before {
		t.Fatal("the deployment started without waking its sleeping project")
	}
}
