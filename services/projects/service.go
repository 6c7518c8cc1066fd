// Package projects wires the projects service: the use cases, their Mongo
// store, the mlflow launcher and the NATS endpoints. main and the
// all-in-one binary both call Run.
package projects

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/projects/adapters"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
	"github.com/mlpanel/mlpanel/services/projects/ports"
)

// Version is reported by $SRV.INFO.
const Version = "0.1.0"

// Config is the projects service's settings.
type Config struct {
	Home         string
	Ports        proc.Range
	Host         string // where tracking servers bind
	AdvertHost   string // the host in mlflowUri
	PublicURL    string // when set, mlflowUri is PublicURL/projects/<name>/mlflow
	Mlflow       string
	Workers      int
	Jobs         bool
	StartTimeout time.Duration
	MaxFailures  int
	StopOnExit   bool
	IdleTimeout  time.Duration
	MaxAwake     int
}

// ConfigFromEnv reads the MLPANEL_* settings of the projects service.
func ConfigFromEnv(r *conf.Reader) Config {
	home, _ := filepath.Abs(r.String("HOME", ".mlpanel"))
	c := Config{
		Home:         home,
		Host:         r.String("TRACKING_HOST", "127.0.0.1"),
		PublicURL:    r.String("PUBLIC_URL", ""),
		Mlflow:       r.String("MLFLOW", conf.DefaultMlflow()),
		Workers:      r.Int("MLFLOW_WORKERS", 1),
		Jobs:         r.Bool("MLFLOW_JOBS", false),
		StartTimeout: r.Duration("START_TIMEOUT", 2*time.Minute),
		MaxFailures:  r.Int("MAX_FAILURES", 5),
		StopOnExit:   r.Bool("STOP_ON_EXIT", true),
		IdleTimeout:  r.Duration("IDLE_TIMEOUT", 15*time.Minute),
		MaxAwake:     r.Int("MAX_AWAKE", 0),
	}
	c.AdvertHost = r.String("TRACKING_ADVERTISE_HOST", conf.Reachable(c.Host))
	c.Ports = r.PortRange("PORT_RANGE", "5000-5099")
	return c
}

// Run serves the projects service until ctx ends, then stops what it
// started.
func Run(ctx context.Context, cfg Config, nc *nats.Conn, db *mongo.Database, log *slog.Logger) error {
	log = log.With("service", ports.Service)
	if err := conf.CheckMlflow(cfg.Mlflow); err != nil {
		return err
	}
	js, err := events.OpenStream(ctx, nc)
	if err != nil {
		return err
	}
	store, err := adapters.NewMongoStore(ctx, db)
	if err != nil {
		return err
	}
	svc := app.New(app.Config{
		Home:         cfg.Home,
		Ports:        cfg.Ports,
		Host:         cfg.Host,
		AdvertiseURL: cfg.advertiseURL,
		InternalURL:  cfg.internalURL,
		StartTimeout: cfg.StartTimeout,
		MaxFailures:  cfg.MaxFailures,
		StopOnExit:   cfg.StopOnExit,
		IdleTimeout:  cfg.IdleTimeout,
		MaxAwake:     cfg.MaxAwake,
	}, store, cfg.servers(),
		events.NewPublisher(js, "mlpanel/projects"), log)

	return reconcile.Serve(ctx, svc, func() (reconcile.Endpoints, error) {
		ms, err := ports.Register(nc, svc, Version)
		if err == nil {
			log.Info("projects service ready", "ports", cfg.Ports.String(), "mlflow", cfg.Mlflow)
		}
		return ms, err
	}, log)
}

func (c Config) servers() *adapters.MLflowServers {
	s := adapters.NewMLflowServers(c.Mlflow, c.Host, c.Workers, c.Jobs)
	if ip := net.ParseIP(c.AdvertHost); ip == nil || !(ip.IsLoopback() || ip.IsPrivate()) {
		// A host name (a compose service, say): MLflow's defaults would
		// refuse it, so list it beside loopback.
		s.AllowedHosts = strings.Join([]string{c.AdvertHost, c.AdvertHost + ":*", "localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"}, ",")
	}
	return s
}

func (c Config) advertiseURL(p domain.Project) string {
	if c.PublicURL != "" {
		return c.PublicURL + "/projects/" + p.Name + "/mlflow"
	}
	return c.internalURL(p)
}

func (c Config) internalURL(p domain.Project) string {
	return "http://" + net.JoinHostPort(c.AdvertHost, strconv.Itoa(p.Port)) + adapters.PathPrefix(p)
}
