// Package app holds the projects use cases, one per file, and the
// reconcile loop that makes every tracking server match what its project
// asks for. It depends on small interfaces, not on Mongo, NATS or MLflow.
package app

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// Store keeps project records. Implementations return ErrNotFound and
// ErrDuplicateName for the known conditions.
type Store interface {
	reconcile.Records[domain.Project]
	GetByName(ctx context.Context, name string) (domain.Project, error)
	Delete(ctx context.Context, id string) error
}

var (
	ErrNotFound      = errors.New("not found")
	ErrDuplicateName = errors.New("duplicate name")
)

// Databases creates and drops the PostgreSQL databases of projects with
// backend postgresql, on the server of MLPANEL_PROJECT_DB_URL.
type Databases interface {
	Create(ctx context.Context, name string) error
	Drop(ctx context.Context, name string) error
}

// Publisher publishes change events.
type Publisher = events.Publishes

// Config is what the use cases need to know about their surroundings.
type Config struct {
	Home         string                        // data home; projects live in Home/projects/<id>
	Ports        proc.Range                    // tracking server ports
	Host         string                        // interface local servers bind to, for picking free ports
	AdvertiseURL func(p domain.Project) string // mlflowUri
	InternalURL  func(p domain.Project) string // internalUrl
	StartTimeout time.Duration                 // how long a server may take to answer /health
	MaxFailures  int                           // consecutive crashes before a project is failed
	StopOnExit   bool                          // stop every server when the service stops (Server.Stop)
	Interval     time.Duration                 // reconcile period
	IdleTimeout  time.Duration                 // a running project unused this long sleeps; 0 never
	MaxAwake     int                           // at most this many servers run at once when waking; 0 no bound
	Databases    Databases                     // nil: MLPANEL_PROJECT_DB_URL is not set, only SQLite projects
	SharedPid    func() int                    // the warm MLflow process servers fork from (0: none), for stats
}

// Service is the projects application.
type Service struct {
	cfg     Config
	store   Store
	runtime Runtime // runs the servers: runtime.go
	pub     Publisher
	log     *slog.Logger
	now     func() time.Time

	// createMu serialises the checks that span projects: unique names and
	// ports. ctl.Lock serialises every write to one project (reconcile
	// included), because FerretDB on SQLite does not apply concurrent
	// updates atomically.
	createMu sync.Mutex
	ctl      *reconcile.Controller
	rec      events.Recorder[domain.Project]
	rt       reconcile.Runtimes[serverState] // by project id
}

// New builds the service.
func New(cfg Config, store Store, runtime Runtime, pub Publisher, log *slog.Logger) *Service {
	cfg.Interval = cmp.Or(cfg.Interval, time.Second)
	cfg.MaxFailures = cmp.Or(cfg.MaxFailures, 5)
	cfg.StartTimeout = cmp.Or(cfg.StartTimeout, 2*time.Minute)
	s := &Service{
		cfg: cfg, store: store, runtime: runtime, pub: pub, log: log,
		now: reconcile.Now,
	}
	s.rec = events.Recorder[domain.Project]{Entity: "project", IDOf: projectID, Replace: store.Replace, Pub: pub, Log: log,
		Stamp: func(p *domain.Project) { p.UpdatedAt = s.now() }}
	s.ctl = reconcile.New(s, reconcile.Options{List: s.ids, Resync: cfg.Interval, Name: "project", Log: log})
	return s
}

func projectID(p domain.Project) string { return p.ID }
