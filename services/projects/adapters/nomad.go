package adapters

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// Nomad runs each project's tracking server as the Nomad service job
// mlpanel-project-<id> (MLPANEL_RUNTIME=nomad). With the raw_exec driver
// the job runs the mlflow of the panel's virtualenv on whichever node
// Nomad picks, on the project's files under the data home: every node
// must see the virtualenv and the data home at the same paths (one host,
// or a shared file system), or the project uses backend postgresql and
// keeps only its artifacts there.
type Nomad struct {
	RT     *nomadrt.Runtime
	Server *MLflowServers // the mlflow executable, workers and backend settings, as the local runtime uses them
	// Prepare, when set, readies the project's database before each
	// start (mlflowdb.Upgrading.Prepare: template copy, migration).
	Prepare func(p domain.Project) error
	// Artifacts is MLPANEL_NOMAD_ARTIFACTS_DESTINATION: the root under
	// which projects with a database server keep their artifacts, so
	// they need no file on the node (ArtifactsDestination).
	Artifacts string

	mu      sync.Mutex
	seen    map[string]string         // project id -> internalUrl last observed, so Healthy never probes a stale address
	volumes map[string]nomadrt.Volume // project id -> its volume, once found or made
}

var _ app.Runtime = (*Nomad)(nil)

// JobPrefix starts the name of every project's job.
const JobPrefix = "mlpanel-project-"

// JobName is the Nomad job of project p.
func JobName(p domain.Project) string { return JobPrefix + p.ID }

// Start registers the project's job; an existing one (left by a panel
// that died mid-start, or stopped by a sleep) is updated and run, never
// doubled, since the job's name is the project's.
func (n *Nomad) Start(ctx context.Context, p domain.Project) (app.Server, error) {
	if n.Prepare != nil && n.RT.VolumeKind() == nomadrt.VolumeNone {
		// On a volume the database is the node's: MLflow makes it on
		// the first start.
		if err := n.Prepare(p); err != nil {
			return nil, err
		}
	}
	spec, err := n.Spec(ctx, p)
	if err != nil {
		return nil, err
	}
	if err := n.RT.Run(ctx, spec); err != nil {
		return nil, err
	}
	return n.server(p), nil
}

// Spec is the job of p: mlflow server on the address and port Nomad
// gives it, with the same store and prefix as a local server. Its files
// are the project's folder, or its Nomad volume (MLPANEL_NOMAD_VOLUME).
// The database address of a project on a database server (with its
// password) goes into the job's secret, not its env, and its artifacts to
// MLPANEL_NOMAD_ARTIFACTS_DESTINATION when that is set.
func (n *Nomad) Spec(ctx context.Context, p domain.Project) (nomadrt.Spec, error) {
	m := n.Server
	var (
		store, env []string
		artifacts  string
		volume     string
		err        error
	)
	dest, shared := ArtifactsDestination(n.Artifacts, p)
	if n.RT.VolumeKind() == nomadrt.VolumeNone {
		store, env, err = m.backendStore(p)
		if err != nil {
			return nomadrt.Spec{}, err
		}
		artifacts = filepath.Join(p.Path, "artifacts")
		if !shared {
			if err := os.MkdirAll(artifacts, 0o755); err != nil {
				return nomadrt.Spec{}, reconcile.Terminal(fmt.Errorf("creating the artifact folder of project %s: %w", p.Name, err))
			}
		}
	} else {
		v, err := n.volume(ctx, p)
		if err != nil {
			return nomadrt.Spec{}, err
		}
		volume = v.Name // a host volume is claimed by name, a CSI one by id
		if v.Kind == nomadrt.VolumeCSI {
			volume = v.ID
		}
		dir := nomadrt.DataDir // where the docker driver mounts it
		if n.RT.Driver() == nomadrt.RawExec {
			// raw_exec mounts nothing: the server uses the folder on
			// the node the job is pinned to.
			if v.HostPath == "" {
				return nomadrt.Spec{}, fmt.Errorf("the Nomad host volume %s of project %s has no folder on its node yet (state %s)", v.Name, p.Name, v.State)
			}
			dir = v.HostPath
		}
		if p.OnServer() {
			_, env, err = m.backendStore(p)
			if err != nil {
				return nomadrt.Spec{}, err
			}
		} else {
			store = []string{"--backend-store-uri", "sqlite:///" + path.Join(dir, "mlflow.db")}
		}
		artifacts = path.Join(dir, "artifacts")
	}
	if shared {
		artifacts = dest
	}
	args := append([]string{"server"}, store...)
	args = append(args,
		"--serve-artifacts",
		"--artifacts-destination", artifacts,
		"--host", nomadrt.Bind,
		"--port", nomadrt.Port,
		"--workers", strconv.Itoa(max(m.Workers, 1)),
		"--static-prefix", PathPrefix(p),
	)
	if m.AllowedHosts != "" {
		args = append(args, "--allowed-hosts", m.AllowedHosts)
	}
	vars := map[string]string{
		"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": strconv.FormatBool(m.Jobs),
		// mlflow server runs gunicorn/uvicorn found beside it.
		"PATH": filepath.Dir(m.Mlflow) + string(os.PathListSeparator) + "/usr/local/bin:/usr/bin:/bin",
	}
	// backendStore's env is the database address: a secret.
	var secret map[string]string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if secret == nil {
			secret = map[string]string{}
		}
		secret[k] = v
	}
	return nomadrt.Spec{
		Name:  JobName(p),
		Group: "tracking",
		Meta:  map[string]string{"mlpanel_kind": "project", "mlpanel_project_id": p.ID, "mlpanel_project_name": p.Name},
		// The job runs from the task's folder on the node: the
		// executable is named by its absolute path.
		Command: m.Mlflow, Args: args, Env: vars, Secret: secret,
		CheckPath: PathPrefix(p) + "/health",
		MemoryMB:  1024,
		Volume:    volume,
	}, nil
}

// volume is the project's Nomad volume, made on its first start. A
// project that ran before and whose volume is gone is not started on
// an empty new one: that would show it without its runs.
func (n *Nomad) volume(ctx context.Context, p domain.Project) (nomadrt.Volume, error) {
	name := JobName(p)
	v, ok, err := n.RT.FindVolume(ctx, name)
	if err != nil {
		return nomadrt.Volume{}, err
	}
	if !ok {
		if p.RanBefore {
			return nomadrt.Volume{}, reconcile.Terminal(fmt.Errorf(
				"the Nomad %s volume %s of project %s is gone, though the project has run before: starting it on a new volume would show it empty. "+
					"Restore the volume under that name, or delete the project. If the project ran before MLPANEL_NOMAD_VOLUME was set, its files are in %s: "+
					"create the volume (nomad volume create) and copy mlflow.db and artifacts/ into it, or run it without MLPANEL_NOMAD_VOLUME", n.RT.VolumeKind(), name, p.Name, p.Path))
		}
		if v, err = n.RT.CreateVolume(ctx, name); err != nil {
			return nomadrt.Volume{}, err
		}
	}
	n.mu.Lock()
	if n.volumes == nil {
		n.volumes = map[string]nomadrt.Volume{}
	}
	n.volumes[p.ID] = v
	n.mu.Unlock()
	return v, nil
}

// waitingFor says why a host volume project has no running allocation
// when the node holding its volume is down; "" otherwise.
func (n *Nomad) waitingFor(ctx context.Context, id, job string) string {
	if n.RT.VolumeKind() != nomadrt.VolumeHost {
		return ""
	}
	n.mu.Lock()
	v, ok := n.volumes[id]
	n.mu.Unlock()
	if !ok { // adopted: look it up once
		found, exists, err := n.RT.FindVolume(ctx, job)
		if err != nil || !exists {
			return ""
		}
		v = found
		n.mu.Lock()
		if n.volumes == nil {
			n.volumes = map[string]nomadrt.Volume{}
		}
		n.volumes[id] = v
		n.mu.Unlock()
	}
	down := n.RT.NodeDown(ctx, v)
	if down == "" {
		return ""
	}
	return fmt.Sprintf("waiting for node %s, which holds the project's host volume %s: the project starts there, with its data, when the node is back", down, v.Name)
}

// Adopt finds the project's job by name. A job Nomad keeps running is
// adopted; a stopped or missing one is none.
func (n *Nomad) Adopt(ctx context.Context, p domain.Project) (app.Server, error) {
	st, err := n.RT.Observe(ctx, JobName(p))
	if err != nil {
		return nil, fmt.Errorf("looking for the Nomad job of project %s: %w", p.ID, err)
	}
	if st.Phase == nomadrt.Absent {
		return nil, nil
	}
	s := n.server(p)
	s.alloc = st.Alloc // what runs now is no restart
	return s, nil
}

// Healthy probes /health at the address the project's job was last
// seen at; before Nomad reported one, nothing answers for it.
func (n *Nomad) Healthy(ctx context.Context, p domain.Project) bool {
	n.mu.Lock()
	addr := n.seen[p.ID]
	n.mu.Unlock()
	if addr == "" || addr != p.InternalURL {
		return false
	}
	u, err := url.Parse(addr)
	if err != nil {
		return false
	}
	return n.RT.Healthy(ctx, u.Host, u.Path+"/health")
}

// Logs is the end of the server's output in its latest allocation.
func (n *Nomad) Logs(ctx context.Context, p domain.Project, lines int) (string, error) {
	out := n.RT.LogTail(ctx, JobName(p), int64(lines)*300)
	parts := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n"), nil
}

// Usage is what the Nomad client running the project's allocation
// measures: resident memory of the task and CPU use now (Nomad keeps no
// PSS and no CPU seconds). No running allocation, or a client that keeps
// no allocation stats, is ErrNoUsage: zeros, as for a sleeping project.
func (n *Nomad) Usage(ctx context.Context, p domain.Project) (app.Usage, error) {
	u, err := n.RT.Usage(ctx, JobName(p))
	if errors.Is(err, nomadrt.ErrNotRunning) || errors.Is(err, nomadrt.ErrNoStats) {
		return app.Usage{}, fmt.Errorf("%w: %w", app.ErrNoUsage, err)
	}
	return u, err
}

// Purge removes the job from Nomad's state, stopped or not, then the
// project's volume and its data.
func (n *Nomad) Purge(ctx context.Context, p domain.Project) error {
	n.forget(p.ID)
	n.mu.Lock()
	delete(n.volumes, p.ID)
	n.mu.Unlock()
	if err := n.RT.Stop(ctx, JobName(p), true); err != nil {
		return err
	}
	if n.RT.VolumeKind() == nomadrt.VolumeNone {
		return nil
	}
	// The stopping allocation holds its claim a few seconds more.
	return n.RT.DeleteVolume(ctx, JobName(p), time.Minute)
}

func (n *Nomad) server(p domain.Project) *nomadServer {
	// Until Nomad first answers, the server is taken to be on its way.
	return &nomadServer{n: n, id: p.ID, job: JobName(p), prefix: PathPrefix(p), last: app.Observation{Alive: true}}
}

func (n *Nomad) record(id, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen == nil {
		n.seen = map[string]string{}
	}
	n.seen[id] = addr
}

func (n *Nomad) forget(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.seen, id)
}

// nomadObserveEvery bounds the Nomad API reads of one server: the reconciler
// observes every second, and a job's placement changes rarely.
const nomadObserveEvery = time.Second

// nomadServer is one project's job.
type nomadServer struct {
	n      *Nomad
	id     string
	job    string
	prefix string

	mu       sync.Mutex
	at       time.Time
	last     app.Observation
	alloc    string // the allocation seen running last
	node     string
	restarts int
}

// Observe reads the job's running allocation. The job being gone (purged
// or stopped behind the panel) is a dead server; an allocation other than
// the one seen before means Nomad restarted or moved the server, which
// counts as a restart; no running allocation means no address yet.
func (s *nomadServer) Observe(ctx context.Context) app.Observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.at.IsZero() && time.Since(s.at) < nomadObserveEvery {
		return s.last
	}
	st, err := s.n.RT.Observe(ctx, s.job)
	if err != nil {
		// Nomad unreachable: the server may well run; keep what was known.
		s.last.Reason = err.Error()
		return s.last
	}
	s.at = time.Now()
	obs := app.Observation{Alive: st.Phase != nomadrt.Absent, Restarts: s.restarts}
	switch st.Phase {
	case nomadrt.Absent:
		obs.Reason = "the Nomad job " + s.job + " was stopped or removed outside the panel"
	case nomadrt.Running:
		if s.alloc != "" && st.Alloc != s.alloc {
			s.restarts++
			obs.Restarts = s.restarts
			obs.Reason = fmt.Sprintf("Nomad placed the server anew on node %s (allocation %s on node %s ended)", st.Node, short(s.alloc), s.node)
		}
		s.alloc, s.node = st.Alloc, st.Node
		if st.Address != "" {
			obs.Address = "http://" + st.Address + s.prefix
		}
	default:
		obs.Reason = st.Reason
		if why := s.n.waitingFor(ctx, s.id, s.job); why != "" {
			obs.Reason, obs.Waiting = why, true
		}
	}
	if obs.Reason == "" {
		obs.Reason = s.last.Reason
	}
	s.n.record(s.id, obs.Address)
	s.last = obs
	return obs
}

// Stop stops the job (sleep); its definition stays for the next Start.
func (s *nomadServer) Stop(ctx context.Context) error {
	s.reset()
	return s.n.RT.Stop(ctx, s.job, false)
}

// Remove stops and purges the job.
func (s *nomadServer) Remove(ctx context.Context) error {
	s.reset()
	return s.n.RT.Stop(ctx, s.job, true)
}

func (s *nomadServer) reset() {
	s.mu.Lock()
	s.at = time.Time{}
	s.mu.Unlock()
	s.n.forget(s.id)
}

func (s *nomadServer) Ref() app.Ref { return app.Ref{Name: s.job} }

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
