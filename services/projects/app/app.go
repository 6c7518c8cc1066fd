// Package app holds the projects use cases, one per file, and the
// reconcile loop that makes every tracking server match what its project
// asks for. It depends on small interfaces, not on Mongo, NATS or MLflow.
package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/keyed"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// Store keeps project records. Implementations return ErrNotFound and
// ErrDuplicateName for the known conditions.
type Store interface {
	NextSeq(ctx context.Context) (int64, error)
	Insert(ctx context.Context, p domain.Project) error
	Get(ctx context.Context, id string) (domain.Project, error)
	GetByName(ctx context.Context, name string) (domain.Project, error)
	Replace(ctx context.Context, p domain.Project) error
	Delete(ctx context.Context, id string) error
	All(ctx context.Context) ([]domain.Project, error)
}

var (
	ErrNotFound      = errors.New("not found")
	ErrDuplicateName = errors.New("duplicate name")
)

// Servers starts and probes MLflow tracking servers.
type Servers interface {
	// Start launches the tracking server of p (files under p.Path, port p.Port).
	Start(p domain.Project) (*proc.Process, error)
	// Healthy reports whether the server of p answers /health.
	Healthy(ctx context.Context, p domain.Project) bool
	// LogFile is where the server of p writes its output.
	LogFile(p domain.Project) string
}

// Publisher publishes change events.
type Publisher interface {
	Publish(ctx context.Context, entity, id, change string, data any) (events.Event, error)
}

// Config is what the use cases need to know about their surroundings.
type Config struct {
	Home         string                        // data home; projects live in Home/projects/<id>
	Ports        proc.Range                    // tracking server ports
	Host         string                        // interface the servers bind to
	AdvertiseURL func(p domain.Project) string // mlflowUri
	InternalURL  func(p domain.Project) string // internalUrl
	StartTimeout time.Duration                 // how long a server may take to answer /health
	MaxFailures  int                           // consecutive crashes before a project is failed
	StopGrace    time.Duration                 // SIGTERM to SIGKILL
	StopOnExit   bool                          // stop every server when the service stops
	Interval     time.Duration                 // reconcile period
}

// Service is the projects application.
type Service struct {
	cfg     Config
	store   Store
	servers Servers
	pub     Publisher
	log     *slog.Logger
	now     func() time.Time

	// createMu serialises the checks that span projects: unique names and
	// ports. locks serialises every write to one project, because
	// FerretDB on SQLite does not apply concurrent updates atomically.
	createMu sync.Mutex
	locks    keyed.Mutex

	rtMu sync.Mutex
	rt   map[string]*runtime // by project id
	kick chan struct{}
}

// runtime is what the service knows about a project's server beyond the
// record: the process handle and the crash bookkeeping for backoff.
type runtime struct {
	proc      *proc.Process
	startedAt time.Time
	crashes   proc.Crashes
	checkedAt time.Time // last /health that answered; running servers are probed every healthEvery
	// unanswered counts /health probes of a live server missed in a row.
	unanswered int
}

// New builds the service.
func New(cfg Config, store Store, servers Servers, pub Publisher, log *slog.Logger) *Service {
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = 5
	}
	if cfg.StopGrace == 0 {
		cfg.StopGrace = 10 * time.Second
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	return &Service{
		cfg: cfg, store: store, servers: servers, pub: pub, log: log,
		now:  func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }, // what Mongo keeps
		rt:   map[string]*runtime{},
		kick: make(chan struct{}, 1),
	}
}

func (s *Service) runtimeOf(id string) *runtime {
	s.rtMu.Lock()
	defer s.rtMu.Unlock()
	r, ok := s.rt[id]
	if !ok {
		r = &runtime{}
		s.rt[id] = r
	}
	return r
}

func (s *Service) forget(id string) {
	s.rtMu.Lock()
	defer s.rtMu.Unlock()
	delete(s.rt, id)
}

// save writes p and publishes change (if any) with the record as written.
func (s *Service) save(ctx context.Context, p *domain.Project, change string) error {
	p.UpdatedAt = s.now()
	if err := s.store.Replace(ctx, *p); err != nil {
		return err
	}
	if change != "" {
		s.publish(ctx, *p, change)
	}
	return nil
}

func (s *Service) publish(ctx context.Context, p domain.Project, change string) {
	if _, err := s.pub.Publish(ctx, "project", p.ID, change, p); err != nil {
		// The record is the truth; a lost event is logged, never a failed call.
		s.log.Error("publishing project event", "project", p.ID, "change", change, "err", err)
	}
}
