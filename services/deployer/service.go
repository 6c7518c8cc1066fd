// Package deployer wires the deployer service: it serves registered models
// as prediction endpoints, locally with `mlflow models serve` or on
// Compute Engine, and owns the `deployments` collection.
package deployer

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/kube"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/deployer/adapters"
	"github.com/mlpanel/mlpanel/services/deployer/app"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
	"github.com/mlpanel/mlpanel/services/deployer/ports"
)

// Version is reported by $SRV.INFO.
const Version = "0.1.0"

// Config is the deployer's settings: each tagged field is one MLPANEL_*
// variable with its default (pkg/platform/conf), GCP's included.
type Config struct {
	// Runner is the data home (deployments' logs; the projects' artifacts
	// models are served from) and the mlflow executable.
	conf.Runner
	// RuntimeChoice is MLPANEL_RUNTIME: what runs the model servers of
	// local deployments (runtime.go).
	conf.RuntimeChoice
	// Kube is where MLPANEL_RUNTIME=kubernetes runs the model servers.
	Kube kube.Config
	// Nomad is where MLPANEL_RUNTIME=nomad runs the local deployments'
	// model servers (MLPANEL_NOMAD_*).
	Nomad nomadrt.Config
	// Ports are the ports local model servers take, lo-hi.
	Ports proc.Range `env:"MLPANEL_DEPLOY_PORT_RANGE" envDefault:"6000-6099"`
	// Host is where local model servers bind.
	Host string `env:"MLPANEL_DEPLOY_HOST" envDefault:"127.0.0.1"`
	// AdvertHost is the host in a local deployment's url; by default
	// Host, or loopback when Host is a wildcard.
	AdvertHost string `env:"MLPANEL_DEPLOY_ADVERTISE_HOST" conf:"computed"`
	// Workers are workers per local model server.
	Workers int `env:"MLPANEL_DEPLOY_WORKERS" envDefault:"1"`
	// StartTimeout bounds how long a local model server may take to
	// become healthy.
	StartTimeout time.Duration `env:"MLPANEL_DEPLOY_START_TIMEOUT" envDefault:"3m"`
	// MaxFailures is the crashes in a row after which a deployment is
	// failed.
	MaxFailures int `env:"MLPANEL_DEPLOY_MAX_FAILURES" envDefault:"5"`
	// StopOnExit stops local model servers when the service stops. Off,
	// a restarted deployer adopts them.
	StopOnExit bool `env:"MLPANEL_DEPLOY_STOP_ON_EXIT" envDefault:"true"`
	// KeepServersOnExit, when set, is asked at exit instead of StopOnExit:
	// a panel embedded in tests keeps its servers for one restart to prove
	// adoption, and still leaves no orphan when it closes.
	KeepServersOnExit func() bool
	// GCP are the Compute Engine settings (MLPANEL_GCP_*).
	GCP adapters.GCPConfig
	// AliasResync is how often a deployment that follows an alias looks
	// it up in the registry; registry events make it look at once.
	AliasResync time.Duration `env:"MLPANEL_ALIAS_RESYNC" envDefault:"30s"`
	// AliasResyncFn, when set, is asked instead of AliasResync (tests).
	AliasResyncFn func() time.Duration
	// Drain is how long an old model server keeps answering after a
	// rollover moved the traffic.
	Drain time.Duration `env:"MLPANEL_DEPLOY_DRAIN" envDefault:"10s"`
}

// Settings are the settings structs the deployer command loads: its -h
// lists them and the documentation checks (deployments) read them.
var Settings = []any{boot.Config{}, boot.MongoConfig{}, Config{}}

// ConfigFromEnv loads the deployer's settings and fills the computed ones.
func ConfigFromEnv() (Config, error) {
	var c Config
	if err := conf.Load(&c); err != nil {
		return c, err
	}
	if err := c.Resolve(); err != nil {
		return c, err
	}
	if c.AdvertHost == "" {
		c.AdvertHost = conf.Reachable(c.Host)
	}
	return c, nil
}

// Run serves the deployer until ctx ends.
func Run(ctx context.Context, cfg Config, nc *nats.Conn, db *mongo.Database, log *slog.Logger) error {
	log = log.With("service", ports.Service)
	if err := cfg.Check(); err != nil {
		return err
	}
	local, closeLocal, err := cfg.localBackend()
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: after the reconciler has stopped
	// (or left) the model servers that fetched their models through it.
	defer func() {
		if err := closeLocal(); err != nil {
			log.Warn("closing the local runtime", "err", err)
		}
	}()
	js, err := events.OpenStream(ctx, nc)
	if err != nil {
		return err
	}
	backends := map[domain.Type]app.Backend{domain.TypeLocal: local}
	if cfg.GCP.Project != "" {
		gcp, err := adapters.NewGCP(ctx, cfg.GCP, cfg.Home, log)
		if err != nil {
			return err
		}
		defer gcp.Close()
		backends[domain.TypeGCP] = gcp
	}
	svc := app.New(app.Config{
		StartTimeout: cfg.StartTimeout,
		MaxFailures:  cfg.MaxFailures,
		StopOnExit:   cfg.stopOnExit,
		AliasResync:  cfg.aliasResync,
		Drain:        cfg.Drain,
	}, adapters.NewMongoStore(db), adapters.Projects{NC: nc}, adapters.NewRegistry(), backends,
		events.NewPublisher(js, "mlpanel/deployer"), log)

	sub, err := ports.FollowRegistry(nc, svc, log)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()

	register := func() (reconcile.Endpoints, error) { return ports.Register(nc, svc, Version, events.WithLog(log)) }
	return reconcile.Serve(ctx, svc, register, log, "runtime", cfg.Runtime, "ports", cfg.Ports.String(), "gcp", cfg.GCP.Project != "")
}

func (c Config) aliasResync() time.Duration {
	if c.AliasResyncFn != nil {
		return c.AliasResyncFn()
	}
	if c.AliasResync <= 0 {
		return 30 * time.Second
	}
	return c.AliasResync
}

func (c Config) stopOnExit() bool {
	if c.KeepServersOnExit != nil {
		return !c.KeepServersOnExit()
	}
	return c.StopOnExit
}
