package adapters

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
	"github.com/mlpanel/mlpanel/services/deployer/app"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// Local runs `mlflow models serve` on this machine, one process group per
// deployment, on a port of its range.
type Local struct {
	Mlflow  string     // the mlflow executable
	Home    string     // data home; logs go to Home/deployments/<id>/
	Host    string     // interface the servers bind to
	Advert  string     // host in the deployment's url
	Ports   proc.Range // MLPANEL_DEPLOY_PORT_RANGE
	Workers int

	mu    sync.Mutex
	held  map[int]string  // port -> deployment id, for servers this run knows
	relay *sockhttp.Relay // started on the first project on a Unix socket
}

// Dir is the deployment's folder under the data home.
func (l *Local) Dir(d domain.Deployment) string {
	return filepath.Join(l.Home, "deployments", d.ID)
}

func (l *Local) LogFile(d domain.Deployment) string { return filepath.Join(l.Dir(d), "server.log") }

// TrackingURI is the project's server as this machine reaches it. A
// server on a Unix socket (auth on) is read through the relay, since the
// model server's Python client speaks only TCP; the relay serves reads
// only, to holders of the token in the model server's environment.
func (l *Local) TrackingURI(p app.Project) string {
	if _, ok := sockhttp.Socket(p.InternalURL); !ok {
		return p.InternalURL
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.relay == nil {
		r, err := sockhttp.StartRelay()
		if err != nil {
			return p.InternalURL // the model server's log says it cannot reach it
		}
		l.relay = r
	}
	u, err := l.relay.URL(p.InternalURL)
	if err != nil {
		return p.InternalURL
	}
	return u
}

// Close stops the relay, if one was started; the model servers are the
// service's to stop or leave (StopOnExit). A later TrackingURI starts a
// new relay.
func (l *Local) Close() error {
	l.mu.Lock()
	r := l.relay
	l.relay = nil
	l.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.Close()
}

// Start picks a port (the deployment's previous one when it is free, so
// its url rarely changes) and launches the server without a shell.
func (l *Local) Start(_ context.Context, t app.Target, _ func(domain.Stage)) (app.Server, error) {
	d := t.Deployment
	if err := os.MkdirAll(l.Dir(d), 0o755); err != nil {
		return nil, fmt.Errorf("creating folder of deployment %s: %w", d.ID, err)
	}
	port, err := l.reserve(d)
	if err != nil {
		return nil, err
	}
	args := []string{"models", "serve",
		"-m", d.ModelURI,
		"--env-manager", "local",
		"-h", l.Host,
		"-p", strconv.Itoa(port),
		"-w", strconv.Itoa(max(l.Workers, 1)),
	}
	env := []string{
		"MLFLOW_TRACKING_URI=" + t.TrackingURI,
		"GIT_PYTHON_REFRESH=quiet",
		// mlflow runs `bash -c "exec uvicorn ..."`: uvicorn must be on
		// PATH, and it lives beside mlflow in the virtualenv.
		"PATH=" + VenvPath(l.Mlflow),
	}
	p, err := proc.Start(proc.Spec{Path: l.Mlflow, Args: args, Env: env, Dir: l.Dir(d), LogFile: l.LogFile(d)})
	if err != nil {
		l.release(port)
		return nil, err
	}
	return l.server(d.ID, p, port), nil
}

// Adopt re-attaches to a server by pid and start time.
func (l *Local) Adopt(_ context.Context, d domain.Deployment) (app.Server, bool) {
	p, ok := proc.Adopt(d.Pid, d.PidStart)
	if !ok || d.Port == 0 {
		return nil, false
	}
	l.mu.Lock()
	if l.held == nil {
		l.held = map[int]string{}
	}
	l.held[d.Port] = d.ID
	l.mu.Unlock()
	return l.server(d.ID, p, d.Port), true
}

func (l *Local) server(id string, p *proc.Process, port int) *localServer {
	host := l.Advert
	return &localServer{l: l, p: p, port: port, host: host,
		url:    "http://" + net.JoinHostPort(host, strconv.Itoa(port)),
		client: &http.Client{Timeout: 2 * time.Second}}
}

func (l *Local) reserve(d domain.Deployment) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = map[int]string{}
	}
	try := func(port int) bool {
		if owner, ok := l.held[port]; (ok && owner != d.ID) || !proc.PortFree(l.Host, port) {
			return false
		}
		l.held[port] = d.ID
		return true
	}
	if d.Port >= l.Ports.Lo && d.Port <= l.Ports.Hi && try(d.Port) {
		return d.Port, nil
	}
	for port := l.Ports.Lo; port <= l.Ports.Hi; port++ {
		if try(port) {
			return port, nil
		}
	}
	return 0, &app.Permanent{Err: errs.Unavailablef("no free port left in MLPANEL_DEPLOY_PORT_RANGE %s: stop or delete deployments you no longer need, or widen the range", l.Ports)}
}

func (l *Local) release(port int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, port)
}

type localServer struct {
	l      *Local
	p      *proc.Process
	port   int
	host   string
	url    string
	client *http.Client
}

func (s *localServer) Alive(context.Context) bool { return s.p.Alive() }

// Usage sums the server's process group (its workers included) from /proc.
func (s *localServer) Usage(context.Context) (proc.Usage, error) { return proc.GroupUsage(s.p.Pid) }
func (s *localServer) Local() bool                               { return true }

func (s *localServer) Ready(ctx context.Context) bool { return ping(ctx, s.client, s.url) }

func (s *localServer) Predict(ctx context.Context, body []byte) error {
	return invoke(ctx, s.url, body)
}

func (s *localServer) Stop(context.Context) error {
	err := s.p.Stop(10 * time.Second)
	if err == nil {
		s.l.release(s.port)
	}
	return err
}

func (s *localServer) Apply(d *domain.Deployment) {
	d.Host, d.Port, d.URL = s.host, s.port, s.url
	d.Pid, d.PidStart = s.p.Pid, s.p.StartTime
	d.InstanceName = ""
}

// VenvPath is PATH with the folder of the mlflow executable first.
func VenvPath(mlflow string) string {
	dir := filepath.Dir(mlflow)
	if !filepath.IsAbs(mlflow) {
		return os.Getenv("PATH")
	}
	return dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// invoke posts one predict to a model server and fails unless it answers
// 200, with the server's reason.
func invoke(ctx context.Context, base string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute) // a first predict may load lazily
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/invocations", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building a predict request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("predict: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return fmt.Errorf("predict answered HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// ping reports whether a model server's /ping answers 200.
func ping(ctx context.Context, c *http.Client, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ping", nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
