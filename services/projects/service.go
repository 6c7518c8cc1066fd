// Package projects wires the projects service: the use cases, their Mongo
// store, the mlflow launcher and the NATS endpoints. main and the
// all-in-one binary both call Run.
package projects

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/mysqlurl"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
	"github.com/mlpanel/mlpanel/services/projects/adapters"
	"github.com/mlpanel/mlpanel/services/projects/adapters/mlflowdb"
	"github.com/mlpanel/mlpanel/services/projects/adapters/mysqldb"
	"github.com/mlpanel/mlpanel/services/projects/adapters/pgdb"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
	"github.com/mlpanel/mlpanel/services/projects/ports"
)

// Version is reported by $SRV.INFO.
const Version = "0.1.0"

// Config is the projects service's settings: each tagged field is one
// MLPANEL_* variable with its default (pkg/platform/conf); the untagged
// ones are derived from them by ConfigFromEnv.
type Config struct {
	// Runner is the data home (projects' SQLite databases, artifacts,
	// logs and sockets) and the mlflow executable.
	conf.Runner
	// RuntimeChoice is MLPANEL_RUNTIME: what runs the tracking servers
	// (runtime.go).
	conf.RuntimeChoice
	// Kube is where and how MLPANEL_RUNTIME=kubernetes runs the servers.
	Kube adapters.KubeConfig
	// Nomad is where MLPANEL_RUNTIME=nomad runs the tracking servers
	// (MLPANEL_NOMAD_*).
	Nomad nomadrt.Config
	// NomadArtifacts is where projects on Nomad whose runs live on a
	// database server keep their artifacts (MLflow's
	// --artifacts-destination, the project's id appended), so they need
	// no file on the node. Empty: the project's folder.
	NomadArtifacts string `env:"MLPANEL_NOMAD_ARTIFACTS_DESTINATION"`
	// Ports are the ports tracking servers take, lo-hi.
	Ports proc.Range `env:"MLPANEL_PORT_RANGE" envDefault:"5000-5099"`
	// Host is where tracking servers bind.
	Host string `env:"MLPANEL_TRACKING_HOST" envDefault:"127.0.0.1"`
	// AdvertHost is the host in a project's internalUrl; by default Host,
	// or loopback when Host is a wildcard.
	AdvertHost string `env:"MLPANEL_TRACKING_ADVERTISE_HOST" conf:"computed"`
	// PublicURL, when set, makes mlflowUri PublicURL/projects/<name>/mlflow.
	PublicURL string `env:"MLPANEL_PUBLIC_URL"`
	// Auth is the gateway's MLPANEL_AUTH. Whatever it says, mlflowUri is
	// the gateway's proxy (PublicURL or else GatewayURL) and tracking
	// servers listen on Unix sockets under Home/sockets (0700) unless TCP
	// is set: every use passes the gateway, which can then check tokens,
	// wake a sleeping project and see that an idle one is idle.
	Auth bool `env:"MLPANEL_AUTH" envDefault:"false"`
	// TCP: listen on Host and a port instead (a private network, e.g.
	// compose).
	TCP bool `env:"MLPANEL_TRACKING_TCP" envDefault:"false"`
	// HTTPAddr is the gateway's listen address, read to derive GatewayURL.
	HTTPAddr string `env:"MLPANEL_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	// GatewayURL is the gateway's address, derived from HTTPAddr.
	GatewayURL string
	// Workers are gunicorn/uvicorn workers per tracking server.
	Workers int `env:"MLPANEL_MLFLOW_WORKERS" envDefault:"1"`
	// Jobs runs tracking servers with MLflow's job execution enabled.
	Jobs bool `env:"MLPANEL_MLFLOW_JOBS" envDefault:"false"`
	// Preload forks tracking servers from one warm Python that has
	// imported MLflow (adapters.Zygote) instead of running mlflow afresh:
	// a start or wake in about a second and a fraction of the memory.
	Preload bool `env:"MLPANEL_MLFLOW_PRELOAD" envDefault:"true"`
	// StartTimeout bounds how long a tracking server may take to answer
	// /health.
	StartTimeout time.Duration `env:"MLPANEL_START_TIMEOUT" envDefault:"2m"`
	// MaxFailures is the crashes in a row after which a project is failed.
	MaxFailures int `env:"MLPANEL_MAX_FAILURES" envDefault:"5"`
	// StopOnExit stops the tracking servers when the service stops; off,
	// the next start adopts them.
	StopOnExit bool `env:"MLPANEL_STOP_ON_EXIT" envDefault:"true"`
	// ImportRoot is the folder under which admins may name server-side
	// archives to import; empty refuses every server-side path.
	ImportRoot string `env:"MLPANEL_IMPORT_ROOT"`
	// BackupEvery, when set, writes an export archive of every project
	// into BackupDir that often, keeping the newest BackupKeep of each.
	BackupEvery time.Duration `env:"MLPANEL_BACKUP_SCHEDULE" envDefault:"0s"`
	// BackupDir is where scheduled backups go; by default Home/backups.
	BackupDir string `env:"MLPANEL_BACKUP_DIR" conf:"computed"`
	// BackupKeep is how many scheduled backups are kept per project.
	BackupKeep int `env:"MLPANEL_BACKUP_KEEP" envDefault:"7"`
	// IdleTimeout puts a project with no request for that long to sleep;
	// 0 never does. A project's own idleTimeout overrides it.
	IdleTimeout time.Duration `env:"MLPANEL_IDLE_TIMEOUT" envDefault:"15m"`
	// MaxAwake bounds how many projects run at once; 0: no bound.
	MaxAwake int `env:"MLPANEL_MAX_AWAKE" envDefault:"0"`
	// ProjectDBURL is the PostgreSQL server of projects with backend
	// postgresql; empty: SQLite only.
	ProjectDBURL string `env:"MLPANEL_PROJECT_DB_URL"`
	// ProjectMySQLURL is the MySQL/MariaDB server of projects with
	// backend mysql; empty: backend mysql is refused.
	ProjectMySQLURL string `env:"MLPANEL_PROJECT_MYSQL_URL"`
}

// DefaultIdleTimeout is MLPANEL_IDLE_TIMEOUT's default: every client
// reaches a project through the gateway, so the panel sees every use.
const DefaultIdleTimeout = 15 * time.Minute

// Settings are the settings structs the projects command loads: its -h
// lists them and the documentation checks (deployments) read them.
var Settings = []any{boot.Config{}, boot.MongoConfig{}, Config{}}

// ConfigFromEnv loads the projects service's settings and fills the
// computed ones.
func ConfigFromEnv() (Config, error) {
	var c Config
	if err := conf.Load(&c); err != nil {
		return c, err
	}
	if c.ProjectDBURL != "" {
		if err := pgdb.CheckURL(c.ProjectDBURL); err != nil {
			return c, err
		}
	}
	if c.ProjectMySQLURL != "" {
		if err := mysqlurl.Check(c.ProjectMySQLURL); err != nil {
			return c, err
		}
	}
	if err := c.Resolve(); err != nil {
		return c, err
	}
	if c.BackupDir == "" {
		c.BackupDir = filepath.Join(c.Home, "backups")
	}
	if c.AdvertHost == "" {
		c.AdvertHost = conf.Reachable(c.Host)
	}
	if host, port, err := net.SplitHostPort(c.HTTPAddr); err == nil {
		c.GatewayURL = "http://" + net.JoinHostPort(conf.Reachable(host), port)
	}
	return c, nil
}

// Run serves the projects service until ctx ends, then stops what it
// started.
func Run(ctx context.Context, cfg Config, nc *nats.Conn, db *mongo.Database, log *slog.Logger) error {
	log = log.With("service", ports.Service)
	if err := cfg.Check(); err != nil {
		return err
	}
	tool := &mlflowdb.Tool{Mlflow: cfg.Mlflow}
	runtime, err := cfg.runtime(tool, log)
	if err != nil {
		return err
	}
	defer runtime.close() // after Serve: the servers were stopped or left for adoption
	js, err := events.OpenStream(ctx, nc)
	if err != nil {
		return err
	}
	store, err := adapters.NewMongoStore(ctx, db)
	if err != nil {
		return err
	}
	// Before adoption: a server at an address the settings no longer
	// allow is stopped here, not adopted.
	if err := cfg.moveServers(ctx, store, log); err != nil {
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
		StopOnExit:   cfg.StopOnExit && runtime.stopOnExit,
		IdleTimeout:  cfg.IdleTimeout,
		MaxAwake:     cfg.MaxAwake,
		Databases:    cfg.databases(),
		SharedPid:    runtime.sharedPid,
	}, store, runtime.Runtime,
		events.NewPublisher(js, "mlpanel/projects"), log)

	mover := app.NewMover(svc, tool, cfg.ImportRoot)
	mover.Deployments = ports.Deployments(nc)
	if cfg.BackupEvery > 0 {
		go mover.ScheduleBackups(ctx, cfg.BackupEvery, cfg.BackupDir, cfg.BackupKeep)
	}
	register := func() (reconcile.Endpoints, error) {
		return ports.Register(nc, svc, Version, log, ports.MoveOps(mover))
	}
	return reconcile.Serve(ctx, svc, register, log, "runtime", cfg.Runtime, "ports", cfg.Ports.String(), "mlflow", cfg.Mlflow)
}

// Both database servers index their project databases before a start
// (upgrading); a server type without Index would silently go without.
var _, _ mlflowdb.Indexer = pgdb.Databases{}, mysqldb.Databases{}

// databases are the database servers configured: a create asking for a
// backend whose server is not set is a 400 that names the setting.
func (c Config) databases() map[domain.Backend]app.Databases {
	dbs := map[domain.Backend]app.Databases{}
	if c.ProjectDBURL != "" {
		dbs[domain.BackendPostgreSQL] = pgdb.Databases{URL: c.ProjectDBURL}
	}
	if c.ProjectMySQLURL != "" {
		dbs[domain.BackendMySQL] = mysqldb.Databases{URL: c.ProjectMySQLURL}
	}
	return dbs
}

func (c Config) servers() *adapters.MLflowServers {
	s := adapters.NewMLflowServers(c.Mlflow, c.Host, c.Workers, c.Jobs)
	s.ProjectDBURL = c.ProjectDBURL
	s.ProjectMySQLURL = c.ProjectMySQLURL
	if ip := net.ParseIP(c.AdvertHost); ip == nil || !(ip.IsLoopback() || ip.IsPrivate()) {
		// A host name (a compose service, say): MLflow's defaults would
		// refuse it, so list it beside loopback.
		s.AllowedHosts = strings.Join([]string{c.AdvertHost, c.AdvertHost + ":*", "localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"}, ",")
	}
	return s
}

func (c Config) advertiseURL(p domain.Project) string {
	switch {
	case c.PublicURL != "":
		return c.PublicURL + "/projects/" + p.Name + "/mlflow"
	case c.GatewayURL != "":
		return c.GatewayURL + "/projects/" + p.Name + "/mlflow"
	}
	return c.internalURL(p)
}

// sockets reports whether tracking servers listen on Unix sockets.
func (c Config) sockets() bool { return !c.TCP }

func (c Config) socketPath(p domain.Project) string {
	return filepath.Join(c.Home, "sockets", p.ID+".sock")
}

func (c Config) internalURL(p domain.Project) string {
	if c.sockets() {
		return sockhttp.URL(c.socketPath(p), adapters.PathPrefix(p))
	}
	return "http://" + net.JoinHostPort(c.AdvertHost, strconv.Itoa(p.Port)) + adapters.PathPrefix(p)
}

// maxSocketPath is the longest Unix socket path Linux binds (sun_path).
const maxSocketPath = 107

// checkSocketPath fails early when the data home is too deep for the
// socket of a project with a ten-digit id.
func (c Config) checkSocketPath() error {
	if !c.sockets() {
		return nil
	}
	if longest := c.socketPath(domain.Project{ID: "1234567890"}); len(longest) > maxSocketPath {
		return fmt.Errorf("MLPANEL_HOME %s is too long for tracking server sockets (%s has %d bytes, at most %d): use a shorter MLPANEL_HOME",
			c.Home, longest, len(longest), maxSocketPath)
	}
	return nil
}

// moveServers brings every project's addresses in line with the settings
// (a change of MLPANEL_AUTH, MLPANEL_PUBLIC_URL or MLPANEL_TRACKING_TCP).
// A live server that listens at its old address is stopped first, so the
// reconcile loop starts it again where the settings say: a server left on
// a TCP port after auth was turned on would bypass the gateway.
func (c Config) moveServers(ctx context.Context, store *adapters.MongoStore, log *slog.Logger) error {
	if err := c.checkSocketPath(); err != nil {
		return err
	}
	all, err := store.All(ctx)
	if err != nil {
		return fmt.Errorf("loading projects to check their addresses: %w", err)
	}
	for _, p := range all {
		internal, advert := c.internalURL(p), c.advertiseURL(p)
		if c.Runtime != conf.RuntimeLocal {
			internal = p.InternalURL // a cluster runtime reports its servers' addresses itself
		}
		if p.InternalURL == internal && p.MlflowURI == advert {
			continue
		}
		if p.InternalURL != internal && p.Pid != 0 {
			if pr, ok := proc.Adopt(p.Pid, p.PidStart); ok {
				log.Info("restarting tracking server at its new address", "project", p.ID, "from", p.InternalURL, "to", internal)
				if err := pr.Stop(stopGrace); err != nil {
					return fmt.Errorf("stopping the server of project %s to move it: %w", p.ID, err)
				}
			}
			p.Pid, p.PidStart = 0, 0
		}
		p.InternalURL, p.MlflowURI = internal, advert
		if err := store.Replace(ctx, p); err != nil {
			return fmt.Errorf("saving the new address of project %s: %w", p.ID, err)
		}
	}
	return nil
}
