package adapters

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/mysqlurl"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
	"github.com/mlpanel/mlpanel/services/projects/adapters/pgdb"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// MLflowServers runs `mlflow server` from the project's virtualenv.
type MLflowServers struct {
	Mlflow  string // path of the mlflow executable
	Host    string // interface to bind
	Workers int
	// Jobs enables MLflow's background job runner (GenAI jobs). It forks
	// eight extra Python processes per server, so it is off unless asked.
	Jobs bool
	// AllowedHosts is passed to --allowed-hosts when set: MLflow rejects
	// Host headers other than loopback and private IPs, and other
	// containers reach a team server's tracking servers by host name.
	AllowedHosts string
	// ProjectDBURL is MLPANEL_PROJECT_DB_URL, the server of the
	// databases of projects with backend postgresql.
	ProjectDBURL string
	// ProjectMySQLURL is MLPANEL_PROJECT_MYSQL_URL, the server of the
	// databases of projects with backend mysql.
	ProjectMySQLURL string
	// Zygote, when set, forks each server from one warm Python that has
	// imported MLflow already (MLPANEL_MLFLOW_PRELOAD); nil runs the
	// mlflow executable afresh for each.
	Zygote *Zygote
	client *http.Client
}

// socketDirMode keeps a project's socket to the panel's own OS user:
// uvicorn makes the socket itself 0666, so the folder is what guards it.
const socketDirMode = 0o700

// NewMLflowServers returns the launcher.
func NewMLflowServers(mlflow, host string, workers int, jobs bool) *MLflowServers {
	return &MLflowServers{Mlflow: mlflow, Host: host, Workers: workers, Jobs: jobs,
		client: &http.Client{Timeout: 2 * time.Second, Transport: sockhttp.Transport(nil)}}
}

func (m *MLflowServers) LogFile(p domain.Project) string { return filepath.Join(p.Path, "mlflow.log") }

// Start launches the server with the project's own SQLite database and
// served artifacts, so remote clients upload artifacts through it. It
// listens where the project's internalUrl says: a Unix socket
// (sockhttp.URL) or the project's port on Host.
func (m *MLflowServers) Start(p domain.Project) (*proc.Process, error) {
	store, env, err := m.backendStore(p)
	if err != nil {
		return nil, err
	}
	artifacts := filepath.Join(p.Path, "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		return nil, err
	}
	args := []string{"server"}
	args = append(args, store...)
	args = append(args,
		"--serve-artifacts",
		"--artifacts-destination", artifacts,
		"--host", m.Host,
		"--port", strconv.Itoa(p.Port),
		"--workers", strconv.Itoa(max(m.Workers, 1)),
		// Everything, the web UI included, is served under the same path
		// as the gateway's proxy, so the UI works through the panel too.
		"--static-prefix", PathPrefix(p),
	)
	if m.AllowedHosts != "" {
		args = append(args, "--allowed-hosts", m.AllowedHosts)
	}
	if socket, ok := sockhttp.Socket(p.InternalURL); ok {
		if err := prepareSocket(socket); err != nil {
			return nil, err
		}
		// uvicorn binds the socket instead of --host/--port.
		args = append(args, "--uvicorn-opts", "--uds "+shellQuote(socket))
	}
	env = append(env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION="+strconv.FormatBool(m.Jobs))
	if m.Zygote != nil {
		return m.spawn(args, env, p)
	}
	return proc.Start(proc.Spec{Path: m.Mlflow, Args: args, Env: env, Dir: p.Path, LogFile: m.LogFile(p)})
}

// ServerStoreURI is MLflow's address of the database of p, a project
// whose runs live on a database server: on pgURL (MLPANEL_PROJECT_DB_URL)
// or mysqlURL (MLPANEL_PROJECT_MYSQL_URL) as its backend says.
func ServerStoreURI(p domain.Project, pgURL, mysqlURL string) (string, error) {
	server, address := pgURL, pgdb.DatabaseURL
	if p.Backend == domain.BackendMySQL {
		server, address = mysqlURL, mysqlurl.SQLAlchemyURL
	}
	if server == "" {
		return "", reconcile.Terminal(fmt.Errorf(
			"project %s keeps its runs in %s (database %s) but %s is not set: set it to the server that holds that database and run the project again",
			p.Name, p.Backend.Label(), p.Database, p.Backend.Setting()))
	}
	uri, err := address(server, p.Database)
	if err != nil {
		return "", reconcile.Terminal(err)
	}
	return uri, nil
}

// ArtifactsDestination is where a cluster runtime's server of p keeps its
// artifacts when root (MLPANEL_KUBE_ARTIFACTS_DESTINATION,
// MLPANEL_NOMAD_ARTIFACTS_DESTINATION: any URI MLflow's
// --artifacts-destination takes) is set: <root>/<project id>. It applies
// to projects whose runs live on a database server only; a SQLite project
// keeps its artifacts beside its database (ok false).
func ArtifactsDestination(root string, p domain.Project) (dest string, ok bool) {
	if root == "" || !p.OnServer() {
		return "", false
	}
	return strings.TrimRight(root, "/") + "/" + p.ID, true
}

// CheckArtifactsDestination says what to fix in a runtime's artifacts
// destination setting: a relative path would land in whatever folder the
// server happens to start in on its node.
func CheckArtifactsDestination(setting, root string) error {
	if root == "" || filepath.IsAbs(root) {
		return nil
	}
	if u, err := url.Parse(root); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		return nil
	}
	return fmt.Errorf("%s=%q: use an absolute path that every node mounts, or a URI MLflow's --artifacts-destination takes, such as s3://bucket/mlpanel", setting, root)
}

// backendStore is how the server of p finds its database: arguments
// for SQLite, the environment for a database server, whose address may
// hold a password that command lines show to every user of the host.
func (m *MLflowServers) backendStore(p domain.Project) (args, env []string, err error) {
	if p.OnServer() {
		uri, err := ServerStoreURI(p, m.ProjectDBURL, m.ProjectMySQLURL)
		if err != nil {
			return nil, nil, err
		}
		return nil, []string{"MLFLOW_BACKEND_STORE_URI=" + uri}, nil
	}
	db := filepath.Join(p.Path, "mlflow.db")
	if _, err := os.Stat(db); p.RanBefore && errors.Is(err, fs.ErrNotExist) {
		// mlflow would create an empty database and the project would
		// seem to have lost every run without a word.
		return nil, nil, reconcile.Terminal(fmt.Errorf(
			"the tracking database %s of project %s is missing, though the project has run before: starting it would show it empty. "+
				"Put mlflow.db back from a backup and run the project again, or delete the project", db, p.Name))
	}
	return []string{"--backend-store-uri", "sqlite:///" + db}, nil, nil
}

// spawn has the zygote fork the server, with the same header in its log
// as a started one.
func (m *MLflowServers) spawn(args, env []string, p domain.Project) (*proc.Process, error) {
	logf, err := os.OpenFile(m.LogFile(p), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log %s: %w", m.LogFile(p), err)
	}
	fmt.Fprintf(logf, "\n==> %s forked from the MLflow zygote: mlflow %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(args, " "))
	logf.Close()
	return m.Zygote.Spawn(args, env, p.Path, m.LogFile(p))
}

// PathPrefix is where a project's tracking server serves everything:
// /projects/<id>/mlflow, the same path the gateway proxies.
func PathPrefix(p domain.Project) string { return "/projects/" + p.ID + "/mlflow" }

// Healthy reports whether /health answers 200.
func (m *MLflowServers) Healthy(ctx context.Context, p domain.Project) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	base := "http://" + hostPort(m.Host, p.Port) + PathPrefix(p)
	if _, ok := sockhttp.Socket(p.InternalURL); ok {
		base = sockhttp.Target(p.InternalURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// hostPort is where to reach a server bound to host.
func hostPort(host string, port int) string {
	return net.JoinHostPort(conf.Reachable(host), strconv.Itoa(port))
}

// prepareSocket makes the socket's folder private and removes a socket
// file left by a server that died: uvicorn cannot bind over it. A socket
// that still answers belongs to a live server, which is an error.
func prepareSocket(socket string) error {
	dir := filepath.Dir(socket)
	if err := os.MkdirAll(dir, socketDirMode); err != nil {
		return fmt.Errorf("creating the socket folder %s: %w", dir, err)
	}
	if err := os.Chmod(dir, socketDirMode); err != nil {
		return fmt.Errorf("making the socket folder %s private: %w", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if conn, err := sockhttp.Dial(ctx, socket); err == nil {
		conn.Close()
		return fmt.Errorf("socket %s is in use by another server: stop it first", socket)
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the stale socket %s: %w", socket, err)
	}
	return nil
}

// shellQuote quotes s for Python's shlex.split, which MLflow applies to
// --uvicorn-opts.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }
