// Package deployer wires the deployer service: it serves registered models
// as prediction endpoints, locally with `mlflow models serve` or on
// Compute Engine, and owns the `deployments` collection.
package deployer

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/deployer/adapters"
	"github.com/mlpanel/mlpanel/services/deployer/app"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
	"github.com/mlpanel/mlpanel/services/deployer/ports"
)

// Version is reported by $SRV.INFO.
const Version = "0.1.0"

// Config is the deployer's settings.
type Config struct {
	Home         string
	Mlflow       string
	Ports        proc.Range // MLPANEL_DEPLOY_PORT_RANGE
	Host         string     // where local model servers bind
	AdvertHost   string     // the host in a local deployment's url
	Workers      int
	StartTimeout time.Duration
	MaxFailures  int
	// StopOnExit stops local model servers when the service stops. Off,
	// a restarted deployer adopts them.
	StopOnExit bool
	// KeepServersOnExit, when set, is asked at exit instead of StopOnExit:
	// a panel embedded in tests keeps its servers for one restart to prove
	// adoption, and still leaves no orphan when it closes.
	KeepServersOnExit func() bool
	GCP               adapters.GCPConfig
	// AliasResync is how often a deployment that follows an alias looks
	// it up in the registry (MLPANEL_ALIAS_RESYNC); registry events make
	// it look at once. AliasResyncFn, when set, is asked instead (tests).
	AliasResync   time.Duration
	AliasResyncFn func() time.Duration
	// Drain is how long an old model server keeps answering after a
	// rollover moved the traffic (MLPANEL_DEPLOY_DRAIN).
	Drain time.Duration
}

// ConfigFromEnv reads the MLPANEL_* settings of the deployer.
func ConfigFromEnv(r *conf.Reader) Config {
	home, _ := filepath.Abs(r.String("HOME", ".mlpanel"))
	c := Config{
		Home:         home,
		Mlflow:       r.String("MLFLOW", conf.DefaultMlflow()),
		Host:         r.String("DEPLOY_HOST", "127.0.0.1"),
		Workers:      r.Int("DEPLOY_WORKERS", 1),
		StartTimeout: r.Duration("DEPLOY_START_TIMEOUT", 3*time.Minute),
		MaxFailures:  r.Int("DEPLOY_MAX_FAILURES", 5),
		StopOnExit:   r.Bool("DEPLOY_STOP_ON_EXIT", true),
		AliasResync:  r.Duration("ALIAS_RESYNC", 30*time.Second),
		Drain:        r.Duration("DEPLOY_DRAIN", 10*time.Second),
		GCP: adapters.GCPConfig{
			Project:      r.String("GCP_PROJECT", ""),
			Zone:         r.String("GCP_ZONE", "us-central1-a"),
			MachineType:  r.String("GCP_MACHINE_TYPE", "e2-standard-2"),
			Image:        r.String("GCP_IMAGE", "projects/cos-cloud/global/images/family/cos-stable"),
			ServingImage: r.String("GCP_SERVING_IMAGE", "ghcr.io/mlflow/mlflow:v3.6.0"),
			Network:      r.String("GCP_NETWORK", "global/networks/default"),
			ServingPort:  r.Int("GCP_SERVING_PORT", 8080),
			Firewall:     r.String("GCP_FIREWALL_RULE", "mlpanel-model-serving"),
			Tag:          r.String("GCP_NETWORK_TAG", "mlpanel-model-serving"),
			Endpoint:     r.String("GCP_ENDPOINT", ""),
			StartTimeout: r.Duration("GCP_START_TIMEOUT", 15*time.Minute),
			PollEvery:    r.Duration("GCP_POLL_INTERVAL", 5*time.Second),
		},
	}
	c.AdvertHost = r.String("DEPLOY_ADVERTISE_HOST", conf.Reachable(c.Host))
	c.Ports = r.PortRange("DEPLOY_PORT_RANGE", "6000-6099")
	return c
}

// Run serves the deployer until ctx ends.
func Run(ctx context.Context, cfg Config, nc *nats.Conn, db *mongo.Database, log *slog.Logger) error {
	log = log.With("service", ports.Service)
	if err := conf.CheckMlflow(cfg.Mlflow); err != nil {
		return err
	}
	js, err := events.OpenStream(ctx, nc)
	if err != nil {
		return err
	}
	backends := map[domain.Type]app.Backend{
		domain.TypeLocal: &adapters.Local{
			Mlflow: cfg.Mlflow, Home: cfg.Home, Host: cfg.Host, Advert: cfg.AdvertHost,
			Ports: cfg.Ports, Workers: cfg.Workers,
		},
	}
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

	return reconcile.Serve(ctx, svc, func() (reconcile.Endpoints, error) {
		ms, err := ports.Register(nc, svc, Version)
		if err == nil {
			log.Info("deployer ready", "ports", cfg.Ports.String(), "gcp", cfg.GCP.Project != "")
		}
		return ms, err
	}, log)
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
