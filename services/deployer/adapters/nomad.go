package adapters

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/deployer/app"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// Nomad runs local deployments' model servers as Nomad service jobs
// (MLPANEL_RUNTIME=nomad): `mlflow models serve` from the panel's
// virtualenv with the raw_exec driver, on the node Nomad picks, with a
// /ping health check. One job per served version,
// mlpanel-deployment-<id>-v<version>, so a rollover runs the new version
// beside the old one and a restarted deployer finds both by name.
type Nomad struct {
	RT *nomadrt.Runtime
	// Local lends its data home (the deployment's log), workers, mlflow
	// executable and the relay to projects on Unix sockets.
	Local *Local
	// Wait bounds how long Start waits for Nomad to place the server.
	Wait time.Duration
}

// DeploymentJobPrefix starts the name of every deployment's job.
const DeploymentJobPrefix = "mlpanel-deployment-"

// JobName is the Nomad job serving d's version.
func JobName(d domain.Deployment) string {
	return DeploymentJobPrefix + d.ID + "-v" + d.Version
}

func (n *Nomad) LogFile(d domain.Deployment) string { return n.Local.LogFile(d) }
func (n *Nomad) TrackingURI(p app.Project) string   { return n.Local.TrackingURI(p) }
func (n *Nomad) spec(t app.Target) nomadrt.Spec {
	d := t.Deployment
	return nomadrt.Spec{
		Name:  JobName(d),
		Group: "model",
		Meta: map[string]string{"mlpanel_kind": "deployment", "mlpanel_deployment_id": d.ID,
			"mlpanel_project_id": d.ProjectID, "mlpanel_model": d.ModelID, "mlpanel_version": d.Version},
		Command: n.Local.Mlflow,
		Args: []string{"models", "serve", "-m", d.ModelURI, "--env-manager", "local",
			"-h", nomadrt.Bind, "-p", nomadrt.Port, "-w", strconv.Itoa(max(n.Local.Workers, 1))},
		Env: map[string]string{
			"MLFLOW_TRACKING_URI": t.TrackingURI,
			"GIT_PYTHON_REFRESH":  "quiet",
			// mlflow runs `bash -c "exec uvicorn ..."`: uvicorn lives
			// beside mlflow in the virtualenv.
			"PATH": filepath.Dir(n.Local.Mlflow) + string(os.PathListSeparator) + "/usr/local/bin:/usr/bin:/bin",
		},
		CheckPath: "/ping",
		MemoryMB:  1024,
	}
}

// Start registers the job and waits until Nomad runs it somewhere: the
// deployment's url is the allocation's address. On error the job is
// purged.
func (n *Nomad) Start(ctx context.Context, t app.Target, progress func(domain.Stage)) (app.Server, error) {
	d := t.Deployment
	if err := os.MkdirAll(n.Local.Dir(d), 0o755); err != nil {
		return nil, fmt.Errorf("creating folder of deployment %s: %w", d.ID, err)
	}
	name := JobName(d)
	n.logf(d, "registering Nomad job %s (mlflow models serve -m %s)", name, d.ModelURI)
	if err := n.RT.Run(ctx, n.spec(t)); err != nil {
		return nil, err
	}
	progress(domain.StageWaitingForServer)
	wait := n.Wait
	if wait == 0 {
		wait = 3 * time.Minute
	}
	deadline := time.Now().Add(wait)
	var last nomadrt.Status
	for {
		st, err := n.RT.Observe(ctx, name)
		if err == nil && st.Phase == nomadrt.Running && st.Address != "" {
			n.logf(d, "Nomad runs %s on node %s at %s (allocation %s)", name, st.Node, st.Address, st.Alloc)
			return n.server(d, st), nil
		}
		if err == nil {
			last = st
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			_ = n.RT.Stop(context.WithoutCancel(ctx), name, true)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("Nomad placed no allocation of job %s within %s (%s %s): check `nomad job status %s`", name, wait, last.Phase, last.Reason, name)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Adopt finds the job of d's version running where d's url says. One
// running elsewhere (Nomad moved it while no deployer watched) is not
// adopted: the next Start re-registers the same job, which keeps that
// allocation, and records its new address.
func (n *Nomad) Adopt(ctx context.Context, d domain.Deployment) (app.Server, bool) {
	st, err := n.RT.Observe(ctx, JobName(d))
	if err != nil || st.Phase != nomadrt.Running || st.Address == "" {
		return nil, false
	}
	if "http://"+st.Address != d.URL {
		return nil, false
	}
	return n.server(d, st), true
}

func (n *Nomad) server(d domain.Deployment, st nomadrt.Status) *nomadModel {
	host, port, _ := net.SplitHostPort(st.Address)
	p, _ := strconv.Atoi(port)
	return &nomadModel{n: n, d: d, job: JobName(d), alloc: st.Alloc, host: host, port: p,
		url: "http://" + st.Address, client: &http.Client{Timeout: 2 * time.Second}}
}

// logf appends a line to the deployment's log: its server's own output
// stays in Nomad (`nomad alloc logs`), its tail is copied here on a crash.
func (n *Nomad) logf(d domain.Deployment, format string, args ...any) {
	f, err := os.OpenFile(n.LogFile(d), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "==> %s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// nomadModel is one version's job and the allocation it was found on.
type nomadModel struct {
	n      *Nomad
	d      domain.Deployment
	job    string
	alloc  string
	host   string
	port   int
	url    string
	client *http.Client

	mu   sync.Mutex
	dead bool
}

// Alive reports whether the allocation the server was started on still
// runs. A job stopped behind the panel, a lost node or a replacement
// allocation (at another address) is a dead server: the deployer then
// starts it again, which finds Nomad's replacement and its new url.
func (s *nomadModel) Alive(ctx context.Context) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return false
	}
	st, err := s.n.RT.Observe(ctx, s.job)
	if err != nil {
		return true // Nomad unreachable: it may well run
	}
	if st.Phase == nomadrt.Running && st.Alloc == s.alloc {
		return true
	}
	s.dead = true
	s.n.logf(s.d, "allocation %s of Nomad job %s no longer runs (%s %s); last output:\n%s",
		s.alloc, s.job, st.Phase, st.Reason, s.n.RT.LogTail(ctx, s.job, 4000))
	return false
}

func (s *nomadModel) Ready(ctx context.Context) bool { return ping(ctx, s.client, s.url) }

// Usage is what the Nomad client running the job measures: resident
// memory and CPU percent of the task (no PSS, no CPU seconds). No
// running allocation, or a client that keeps no allocation stats, is
// app.ErrNoUsage.
func (s *nomadModel) Usage(ctx context.Context) (proc.Usage, error) {
	u, err := s.n.RT.Usage(ctx, s.job)
	if errors.Is(err, nomadrt.ErrNotRunning) || errors.Is(err, nomadrt.ErrNoStats) {
		return proc.Usage{}, fmt.Errorf("%w: %w", app.ErrNoUsage, err)
	}
	return u, err
}

func (s *nomadModel) Predict(ctx context.Context, body []byte) error {
	return invoke(ctx, s.url, body)
}

// Local is false: the job outlives the deployer, which adopts it.
func (s *nomadModel) Local() bool { return false }

// Stop ends the server for good: the job is stopped and purged.
func (s *nomadModel) Stop(ctx context.Context) error {
	return s.n.RT.Stop(ctx, s.job, true)
}

func (s *nomadModel) Apply(d *domain.Deployment) {
	d.Host, d.Port, d.URL = s.host, s.port, s.url
	d.Pid, d.PidStart, d.InstanceName = 0, 0, ""
}
