// Package app holds the deployer's use cases and the reconcile loop that
// makes every model server match what its deployment asks for. It depends
// on small interfaces, not on Mongo, NATS, MLflow or Compute Engine.
package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// Store keeps deployment records; it returns ErrNotFound for a missing one.
type Store = reconcile.Records[domain.Deployment]

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

// Projects looks projects up in the projects service. Errors carry the
// projects service's kind and message (errs.NotFound for an unknown one).
type Projects interface {
	Get(ctx context.Context, ref string) (Project, error)
	// Wake returns the project once its server runs, waking a sleeping
	// one and waiting for a starting one (bounded by ctx).
	Wake(ctx context.Context, ref string) (Project, error)
	// StartWaking asks a sleeping project to wake and returns at once.
	StartWaking(ctx context.Context, ref string) error
}

// Registry resolves a version, an alias or "" (the latest) to a version
// number in a project's model registry. Unknown models and versions are
// errs.NotFound.
type Registry interface {
	Resolve(ctx context.Context, trackingURL, model, version string) (string, error)
	// InputColumns are the input names of the version's signature (none
	// for a model without a column signature).
	InputColumns(ctx context.Context, trackingURL, model, version string) ([]string, error)
	// Schema is the version's signature and input example.
	Schema(ctx context.Context, trackingURL, model, version string) (ModelSchema, error)
	// Alias is the version an alias points to; found is false when the
	// model has no such alias. An unknown model is *events.Error 404.
	Alias(ctx context.Context, trackingURL, model, alias string) (version string, found bool, err error)
	// ServingExample is a body /invocations accepts, built from the
	// version's input example; nil when it was logged without one.
	ServingExample(ctx context.Context, trackingURL, model, version string) ([]byte, error)
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
	// Predict posts body to /invocations and fails unless it answers 200:
	// the proof that a new version serves before traffic moves to it.
	Predict(ctx context.Context, body []byte) error
}

// Permanent marks a start error that retrying cannot fix (a cloud quota,
// a missing permission): the deployment fails at once with its message.
type Permanent struct{ Err error }

func (p *Permanent) Error() string { return p.Err.Error() }
func (p *Permanent) Unwrap() error { return p.Err }

// Publisher publishes change events.
type Publisher = events.Publishes

// Config is what the use cases need to know about their surroundings.
type Config struct {
	StartTimeout time.Duration // how long a server may take to answer /ping after its start
	MaxFailures  int           // consecutive crashes before a deployment fails
	// StopOnExit is asked when the service stops: true stops the local
	// model servers, false leaves them for the next run to adopt.
	StopOnExit  func() bool
	Interval    time.Duration // reconcile period
	HealthEvery time.Duration // how often a running server is checked
	// AliasResync is how often a deployment that follows an alias looks
	// the alias up again (MLPANEL_ALIAS_RESYNC); a registry event makes
	// it look at once. A func so tests can change it while running.
	AliasResync func() time.Duration
	// Drain is how long an old server keeps answering after predict
	// traffic moved to the new version (MLPANEL_DEPLOY_DRAIN), for the
	// requests already sent to it and gateways that switch a moment later.
	Drain time.Duration
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

	// createMu serialises id allocation; ctl.Lock serialises every write
	// to one deployment (reconcile included), because FerretDB on SQLite
	// does not apply concurrent updates atomically.
	createMu sync.Mutex
	ctl      *reconcile.Controller
	rec      events.Recorder[domain.Deployment]
	rt       reconcile.Runtimes[runtime] // by deployment id
	bg       sync.WaitGroup              // background starts and stops
}

// New builds the service.
func New(cfg Config, store Store, projects Projects, registry Registry, backends map[domain.Type]Backend, pub Publisher, log *slog.Logger) *Service {
	cfg.Interval = cmp.Or(cfg.Interval, time.Second)
	cfg.MaxFailures = cmp.Or(cfg.MaxFailures, 5)
	cfg.StartTimeout = cmp.Or(cfg.StartTimeout, 3*time.Minute)
	cfg.HealthEvery = cmp.Or(cfg.HealthEvery, 10*time.Second)
	if cfg.AliasResync == nil {
		cfg.AliasResync = func() time.Duration { return 30 * time.Second }
	}
	s := &Service{
		cfg: cfg, store: store, projects: projects, registry: registry, backends: backends, pub: pub, log: log,
		now: reconcile.Now,
		ctx: context.Background(),
	}
	s.rec = events.Recorder[domain.Deployment]{Entity: "deployment", IDOf: deploymentID, Replace: store.Replace, Pub: pub, Log: log,
		Stamp: func(d *domain.Deployment) { d.UpdatedAt = s.now() }}
	s.ctl = reconcile.New(s, reconcile.Options{List: s.ids, Resync: cfg.Interval, Name: "deployment", Log: log})
	return s
}

func deploymentID(d domain.Deployment) string { return d.ID }
