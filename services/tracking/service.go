// Package tracking wires the tracking service: it answers experiments,
// runs, artifacts and registry requests by calling each running project's
// MLflow REST API. It keeps no state of its own.
package tracking

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/mlmodel"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
	"github.com/mlpanel/mlpanel/services/tracking/adapters"
	"github.com/mlpanel/mlpanel/services/tracking/adapters/mlflowdb"
	"github.com/mlpanel/mlpanel/services/tracking/app"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
	"github.com/mlpanel/mlpanel/services/tracking/ports"
)

// Version is reported by $SRV.INFO.
const Version = "0.1.0"

// Config is the tracking service's settings: each field is one MLPANEL_*
// variable with its default (pkg/platform/conf).
type Config struct {
	// Timeout bounds one operation; a list walks many MLflow pages, so it
	// is longer than one MLflow call but shorter than the gateway's
	// request timeout, so the caller gets this service's answer.
	Timeout time.Duration `env:"MLPANEL_TRACKING_TIMEOUT" envDefault:"55s"`
	// MLflowTimeout bounds one call to a tracking server.
	MLflowTimeout time.Duration `env:"MLPANEL_TRACKING_MLFLOW_TIMEOUT" envDefault:"30s"`
	// PageSize is max_results per MLflow search page when walking lists
	// (1 to 50000; mlflowclient.DefaultPageSize is the default).
	PageSize int `env:"MLPANEL_TRACKING_PAGE_SIZE" envDefault:"1000"`
	// ProjectDBURL is the PostgreSQL server of projects with backend
	// postgresql, for the direct reads.
	ProjectDBURL string `env:"MLPANEL_PROJECT_DB_URL"`
	// ProjectMySQLURL is the MySQL/MariaDB server of projects with
	// backend mysql, for the direct reads.
	ProjectMySQLURL string `env:"MLPANEL_PROJECT_MYSQL_URL"`
	// OpenDatabases is how many projects' databases keep a connection
	// open between reads (most recently used first); the others reopen
	// on their next read. Each open SQLite connection costs about 1 MB.
	OpenDatabases int `env:"MLPANEL_TRACKING_OPEN_DATABASES" envDefault:"64"`
}

// Settings are the settings structs the tracking command loads: its -h
// lists them and the documentation checks (deployments) read them.
var Settings = []any{boot.Config{}, Config{}}

// ConfigFromEnv loads the tracking service's settings.
func ConfigFromEnv() (Config, error) {
	var c Config
	if err := conf.Load(&c); err != nil {
		return c, err
	}
	if c.PageSize < 1 || c.PageSize > 50000 {
		return c, fmt.Errorf("MLPANEL_TRACKING_PAGE_SIZE=%d: want 1 to 50000", c.PageSize)
	}
	if c.OpenDatabases < 1 {
		return c, fmt.Errorf("MLPANEL_TRACKING_OPEN_DATABASES=%d: want 1 or more (about 1 MB each; at least the number of projects a search spans keeps searches fast)", c.OpenDatabases)
	}
	return c, nil
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = 55 * time.Second
	}
	if c.MLflowTimeout <= 0 {
		c.MLflowTimeout = 30 * time.Second
	}
	if c.PageSize <= 0 {
		c.PageSize = mc.DefaultPageSize
	}
	return c
}

// Run serves the tracking service until ctx ends.
func Run(ctx context.Context, cfg Config, nc *nats.Conn, log *slog.Logger) error {
	cfg = cfg.withDefaults()
	log = log.With("service", ports.Service)
	// One transport for every tracking server keeps connections alive
	// between the many calls of one list.
	// Tracking servers listen on Unix sockets when auth is on.
	hc := &http.Client{Timeout: cfg.MLflowTimeout, Transport: sockhttp.Transport(&http.Transport{
		Proxy:               nil, // tracking servers are local or internal; never via a proxy
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
	})}
	clients := func(baseURL string) *mc.Client {
		c := mc.New(sockhttp.Target(baseURL), hc)
		c.PageSize = cfg.PageSize
		return c
	}
	projects := adapters.NewProjects(nc, 10*time.Second, log)
	go projects.Run(ctx)
	svc := app.New(projects, clients, log,
		func() int64 { return time.Now().UnixMilli() })
	direct := mlflowdb.New(log)
	direct.PostgresURL = cfg.ProjectDBURL
	direct.MySQLURL = cfg.ProjectMySQLURL
	direct.MaxWarm = cfg.OpenDatabases
	defer direct.Close()
	svc.UseDirectReads(direct)
	js, err := events.OpenStream(ctx, nc)
	if err != nil {
		return err
	}
	svc.UseEvents(events.NewPublisher(js, app.EventSource))
	svc.UseSignatures(mlmodel.Reader{Client: hc})
	search := app.NewSearch(svc, adapters.NewCatalog(nc, 10*time.Second), direct)
	search.UseDeployments(adapters.NewDeployments(nc, 10*time.Second))
	ms, err := ports.Register(nc, svc, Version, cfg.Timeout, []map[string]events.Operation{ports.SearchOps(search)}, events.WithLog(log))
	if err != nil {
		return err
	}
	log.Info("tracking service ready", "page_size", cfg.PageSize)
	<-ctx.Done()
	if err := ms.Stop(); err != nil {
		log.Warn("stopping micro service", "err", err)
	}
	return nil
}
