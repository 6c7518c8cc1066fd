// Package app holds the deployer's use cases and the reconcile loop that
// makes every model server match what its deployment asks for. It depends
// on small interfaces, not on Mongo, NATS, MLflow or Compute Engine.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/keyed"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// Store keeps deployment records; it returns ErrNotFound for a missing one.
type Store interface {
	NextSeq(ctx context.Context) (int64, error)
	Insert(ctx context.Context, d domain.Deployment) error
	Get(ctx context.Context, id string) (domain.Deployment, error)
	Replace(ctx context.Context, d domain.Deployment) error
	All(ctx context.Context) ([]domain.Deployment, error)
}

// ErrNotFound is what a Store returns for an id it does not hold.
var ErrNotFound = errors.New("not found")

// Project is what the deployer needs to know about a project.
type Project struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	InternalURL string `json:"internalUrl"` // the tracking server, for this machine
	MlflowURI   string `json:"mlflowUri"`   // the tracking server, for clients elsewhere (cloud instances)
}

// Running reports whether the project's tracking server answers.
func (p Project) Running() bool { return p.Status == "running" }

// Projects looks projects up in the projects service. Errors are
// *events.Error with the projects service's status (404 for an unknown one).
type Projects interface {
	Get(ctx context.Context, ref string) (Project, error)
}

// Registry resolves a version, an alias or "" (the latest) to a version
// number in a project's model registry. Unknown models and versions are
// *events.Error 404.
type Registry interface {
	Resolve(ctx context.Context, trackingURL, model, version string) (string, error)
	// InputColumns are the input names of the version's signature (none
	// for a model without a column signature).
	InputColumns(ctx context.Context, trackingURL, model, version string) ([]string, error)
	// Schema is the version's signature and input example.
	Schema(ctx context.Context, trackingURL, model, version string) (ModelSchema, error)
}

// ModelSchema is what a deployed model takes and answers (MLflow's
// signature, as JSON) and the input example it was logged with; null
// where the model has none.
type ModelSchema struct {
	ID           string          `json:"id"`
	ModelID      string          `json:"model_id"`
	Version      string          `json:"version"`
	Inputs       json.RawMessage `json:"inputs"`
	Outputs      json.RawMessage `json:"outputs"`
	Params       json.RawMessage `json:"params"`
	InputExample json.RawMessage `json:"input_example"`
}

// Target is what a backend needs to start a model server.
type Target struct {
	Deployment  domain.Deployment
	TrackingURI string // where the server fetches the model: the project's internal or public URL
}

// Backend runs model servers of one type.
type Backend interface {
	// Start launches a model server. A slow backend reports its stages
	// through progress. On error nothing of this start keeps running.
	Start(ctx context.Context, t Target, progress func(domain.Stage)) (Server, error)
	// Adopt re-attaches to the server an earlier run of the deployer
	// started for d; false when it is gone.
	Adopt(ctx context.Context, d domain.Deployment) (Server, bool)
	// TrackingURI picks the project's URL the model server can reach.
	TrackingURI(p Project) string
	// LogFile is where the deployment's server (or its progress) is logged.
	LogFile(d domain.Deployment) string
}

// Server is one running model server.
type Server interface {
	// Alive reports whether the server still exists (process or instance).
	Alive(ctx context.Context) bool
	// Ready reports whether /ping answers.
	Ready(ctx context.Context) bool
	// Stop ends it for good; nothing of it survives.
	Stop(ctx context.Context) error
	// Apply records where the server is (host, port, url, pid, instance) on d.
	Apply(d *domain.Deployment)
	// Local reports whether the server dies with this machine's deployer
	// (a process) rather than living on its own (a cloud instance).
	Local() bool
}

// Permanent marks a start error that retrying cannot fix (a cloud quota,
// a missing permission): the deployment fails at once with its message.
type Permanent struct{ Err error }

func (p *Permanent) Error() string { return p.Err.Error() }
func (p *Permanent) Unwrap() error { return p.Err }

// Publisher publishes change events.
type Publisher interface {
	Publish(ctx context.Context, entity, id, change string, data any) (events.Event, error)
}

// Config is what the use cases need to know about their surroundings.
type Config struct {
	StartTimeout time.Duration // how long a server may take to answer /ping after its start
	MaxFailures  int           // consecutive crashes before a deployment fails
	// StopOnExit is asked when the service stops: true stops the local
	// model servers, false leaves them for the next run to adopt.
	StopOnExit  func() bool
	Interval    time.Duration // reconcile period
	HealthEvery time.Duration // how often a running server is checked
}

// Service is the deployer application.
type Service struct {
	cfg      Config
	store    Store
	projects Projects
	registry Registry
	backends map[domain.Type]Backend
	pub      Publisher
	log      *slog.Logger
	now      func() time.Time
	ctx      context.Context // the service's life; background starts and stops run under it

	// createMu serialises id allocation; locks serialises every write to
	// one deployment, because FerretDB on SQLite does not apply
	// concurrent updates atomically.
	createMu sync.Mutex
	locks    keyed.Mutex

	rtMu sync.Mutex
	rt   map[string]*runtime
	kick chan struct{}
	bg   sync.WaitGroup // background starts and stops
}

// runtime is what the service knows about a deployment's server beyond
// the record.
type runtime struct {
	srv       Server
	busy      bool               // a start or stop runs in the background
	cancel    context.CancelFunc // cancels a background start
	startedAt time.Time
	crashes   proc.Crashes
	stopRetry time.Time // after a failed stop, no new attempt before this
	checkedAt time.Time
}

// New builds the service.
func New(cfg Config, store Store, projects Projects, registry Registry, backends map[domain.Type]Backend, pub Publisher, log *slog.Logger) *Service {
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = 5
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 3 * time.Minute
	}
	if cfg.HealthEvery == 0 {
		cfg.HealthEvery = 10 * time.Second
	}
	return &Service{
		cfg: cfg, store: store, projects: projects, registry: registry, backends: backends, pub: pub, log: log,
		now:  func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) },
		ctx:  context.Background(),
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

// trigger asks the reconcile loop for a pass now.
func (s *Service) trigger() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// save writes d and publishes change (if any) with the record as written.
func (s *Service) save(ctx context.Context, d *domain.Deployment, change string) error {
	d.UpdatedAt = s.now()
	if err := s.store.Replace(ctx, *d); err != nil {
		return err
	}
	if change != "" {
		s.publish(ctx, *d, change)
	}
	return nil
}

func (s *Service) publish(ctx context.Context, d domain.Deployment, change string) {
	if _, err := s.pub.Publish(ctx, "deployment", d.ID, change, d); err != nil {
		// The record is the truth; a lost event is logged, never a failed call.
		s.log.Error("publishing deployment event", "deployment", d.ID, "change", change, "err", err)
	}
}
