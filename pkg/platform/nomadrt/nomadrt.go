// Package nomadrt runs the panel's servers (MLflow tracking servers, model
// servers) as Nomad service jobs: one job per server, named after what it
// serves, so a restarted panel finds its jobs again by name and never runs
// a second copy. Nomad places, restarts and reschedules them; the panel
// learns where each one runs from its allocation.
//
// Both services (projects, deployer) drive it through their own runtime
// adapters; this package knows Nomad, not projects or deployments.
package nomadrt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Config is where the cluster is and how jobs run on it: the
// MLPANEL_NOMAD_* settings of the projects and deployer services, read
// when MLPANEL_RUNTIME=nomad.
type Config struct {
	// Addr is the HTTP API of a Nomad agent, e.g. http://127.0.0.1:4646.
	Addr string `env:"MLPANEL_NOMAD_ADDR"`
	// Token is an ACL token; empty on a cluster without ACLs.
	Token string `env:"MLPANEL_NOMAD_TOKEN"`
	// Namespace of the jobs; empty: Nomad's default.
	Namespace string `env:"MLPANEL_NOMAD_NAMESPACE"`
	// Datacenters the jobs may run in, comma-separated; empty: any.
	Datacenters []string `env:"MLPANEL_NOMAD_DATACENTERS" envSeparator:","`
	// Driver is raw_exec (the command runs on the node from the panel's
	// virtualenv, which every node must have at the same path, as the
	// data home) or docker (the command runs in Image).
	Driver string `env:"MLPANEL_NOMAD_DRIVER" envDefault:"raw_exec"`
	// Image is the docker driver's image, with mlflow on its PATH.
	Image string `env:"MLPANEL_NOMAD_IMAGE"`
	// Volume is where a project's files live (volume.go): VolumeNone,
	// VolumeHost or VolumeCSI, one Nomad volume per project.
	Volume string `env:"MLPANEL_NOMAD_VOLUME"`
	// VolumePlugin creates the volumes: a host volume plugin (default
	// mkdir) or the CSI plugin's id (required for csi).
	VolumePlugin string `env:"MLPANEL_NOMAD_VOLUME_PLUGIN"`
	// VolumeSize is the capacity asked of a new volume, e.g. 10GiB;
	// empty: the plugin's default.
	VolumeSize string `env:"MLPANEL_NOMAD_VOLUME_SIZE"`
}

// Drivers Nomad may run the servers with.
const (
	RawExec = "raw_exec"
	Docker  = "docker"
)

// PortLabel is the label of a server's one port; its address and port
// reach the command as ${NOMAD_IP_http} and ${NOMAD_PORT_http}.
const PortLabel = "http"

// Validate says what to fix in the settings.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("MLPANEL_NOMAD_ADDR is empty: set it to the HTTP address of a Nomad agent, e.g. http://127.0.0.1:4646")
	}
	switch c.Driver {
	case RawExec:
	case Docker:
		if c.Image == "" {
			return errors.New("MLPANEL_NOMAD_DRIVER=docker needs MLPANEL_NOMAD_IMAGE: an image with mlflow on its PATH")
		}
	default:
		return fmt.Errorf("MLPANEL_NOMAD_DRIVER=%q: use raw_exec (the panel's virtualenv on every node) or docker (with MLPANEL_NOMAD_IMAGE)", c.Driver)
	}
	return c.validateVolume()
}

// Spec is one server to run.
type Spec struct {
	Name  string            // the job's id and name, and its service's name
	Group string            // task group name: what runs ("tracking", "model")
	Meta  map[string]string // names what the job belongs to (shown by `nomad job status`)
	// Command and Args start the server; Bind in an argument is replaced
	// by the address it must listen on, Port by its port.
	Command string
	Args    []string
	Env     map[string]string
	// Secret is environment that must not be readable from the job (a
	// database password): it is kept in the Nomad Variable SecretPath(Name),
	// which the job's own tasks read through their workload identity, and
	// reaches the task through a template, never the job's env.
	Secret map[string]string
	// CheckPath is the HTTP health check Nomad runs; the deployment of
	// the job is healthy once it answers.
	CheckPath string
	MemoryMB  int
	// Volume names the server's volume (its name for a host volume, its
	// id for CSI) when Config.Volume is set: the job claims it.
	Volume string
}

// Placeholders in Spec.Args.
const (
	Bind = "${MLPANEL_BIND}"
	Port = "${NOMAD_PORT_" + PortLabel + "}"
)

// Runtime drives one Nomad cluster.
type Runtime struct {
	cfg    Config
	c      *api.Client
	client *http.Client
	addrs  sync.Map // allocation id -> host:port
}

// New connects to the cluster (lazily: the first call reaches it).
func New(cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := api.NewClient(&api.Config{Address: cfg.Addr, SecretID: cfg.Token, Namespace: cfg.Namespace})
	if err != nil {
		return nil, fmt.Errorf("Nomad client for %s: %w", cfg.Addr, err)
	}
	return &Runtime{cfg: cfg, c: c, client: &http.Client{Timeout: 2 * time.Second}}, nil
}

// Job builds the Nomad job of s.
func (r *Runtime) Job(s Spec) *api.Job {
	dcs := r.cfg.Datacenters
	if len(dcs) == 0 {
		dcs = []string{"*"}
	}
	bind := "${NOMAD_IP_" + PortLabel + "}"
	task := &api.Task{
		Name:   "server",
		Driver: r.cfg.Driver,
		Env:    s.Env,
		Resources: &api.Resources{
			CPU:      ptr(200),
			MemoryMB: ptr(cmp.Or(s.MemoryMB, 512)),
		},
		// A stop gives the server time to finish its requests.
		KillTimeout: ptr(10 * time.Second),
		LogConfig:   &api.LogConfig{MaxFiles: ptr(2), MaxFileSizeMB: ptr(10)},
	}
	if len(s.Secret) > 0 {
		task.Templates = []*api.Template{secretTemplate(s.Name)}
	}
	if r.cfg.Driver == Docker {
		// Inside a container the port is mapped; the server listens on
		// every interface of its own network namespace.
		bind = "0.0.0.0"
	}
	args := make([]string, len(s.Args))
	for i, a := range s.Args {
		args[i] = strings.ReplaceAll(a, Bind, bind)
	}
	switch r.cfg.Driver {
	case Docker:
		task.Config = map[string]any{"image": r.cfg.Image, "command": s.Command, "args": args, "ports": []string{PortLabel}}
	default:
		task.Config = map[string]any{"command": s.Command, "args": args}
	}
	check := &api.ServiceCheck{
		Name: s.Name + "-health", Type: "http", Path: s.CheckPath, PortLabel: PortLabel,
		Interval: 5 * time.Second, Timeout: 2 * time.Second,
	}
	group := &api.TaskGroup{
		Name:     ptr(cmp.Or(s.Group, "server")),
		Count:    ptr(1),
		Networks: []*api.NetworkResource{{DynamicPorts: []api.Port{{Label: PortLabel}}}},
		Services: []*api.Service{{
			Name: s.Name, PortLabel: PortLabel, Provider: "nomad",
			Tags:   tags(s.Meta),
			Checks: []api.ServiceCheck{*check},
		}},
		// A crash is restarted in place a few times; then the allocation
		// fails and Nomad places a new one, on another node if need be,
		// without end: the panel, not Nomad, decides when to give up.
		RestartPolicy: &api.RestartPolicy{Attempts: ptr(2), Interval: ptr(5 * time.Minute), Delay: ptr(3 * time.Second), Mode: ptr("fail")},
		ReschedulePolicy: &api.ReschedulePolicy{
			Unlimited: ptr(true), Delay: ptr(5 * time.Second), DelayFunction: ptr("exponential"), MaxDelay: ptr(time.Minute),
		},
		Update: &api.UpdateStrategy{
			HealthCheck:      ptr("checks"),
			MinHealthyTime:   ptr(time.Second),
			HealthyDeadline:  ptr(5 * time.Minute),
			ProgressDeadline: ptr(10 * time.Minute),
			AutoRevert:       ptr(false),
		},
		Tasks: []*api.Task{task},
	}
	r.attachVolume(group, task, s)
	job := api.NewServiceJob(s.Name, s.Name, "global", 50)
	job.Datacenters = dcs
	if r.cfg.Namespace != "" {
		job.Namespace = ptr(r.cfg.Namespace)
	}
	job.Meta = s.Meta
	job.TaskGroups = []*api.TaskGroup{group}
	return job
}

// SecretPath is the Nomad Variable that holds the secret environment of
// job name: the job's own path, which its tasks may read by default.
func SecretPath(name string) string { return "nomad/jobs/" + name }

// secretTemplate renders the job's variable into the task's environment.
// The file lives in the task's secrets folder; the job spec names only
// the variable. A changed variable restarts the task with the new values;
// a missing one keeps the task waiting for it.
func secretTemplate(name string) *api.Template {
	tmpl := `{{ with nomadVar "` + SecretPath(name) + `" }}{{ range .Tuples }}{{ .K }}={{ .V | toJSON }}
{{ end }}{{ end }}`
	return &api.Template{
		EmbeddedTmpl: ptr(tmpl),
		DestPath:     ptr("secrets/mlpanel.env"),
		Envvars:      ptr(true),
		ChangeMode:   ptr("restart"),
	}
}

// Run registers the job of s: it creates it, starts a stopped one, or
// updates a running one in place (Nomad replaces the allocation only
// when the spec changed). Running it twice is harmless. Its Secret is
// written first, so the task finds it when it starts.
func (r *Runtime) Run(ctx context.Context, s Spec) error {
	if len(s.Secret) > 0 {
		v := &api.Variable{Namespace: r.cfg.Namespace, Path: SecretPath(s.Name), Items: api.VariableItems(s.Secret)}
		if _, _, err := r.c.Variables().Update(v, r.write(ctx)); err != nil {
			return fmt.Errorf("writing the Nomad variable %s of job %s: %w", v.Path, s.Name, err)
		}
	}
	if _, _, err := r.c.Jobs().Register(r.Job(s), r.write(ctx)); err != nil {
		return fmt.Errorf("registering Nomad job %s: %w", s.Name, err)
	}
	return nil
}

// Stop stops the job (its allocations end); purge also removes the job
// from Nomad's state, and then its secret variable. A job that does not
// exist is stopped already.
func (r *Runtime) Stop(ctx context.Context, name string, purge bool) error {
	_, _, err := r.c.Jobs().Deregister(name, purge, r.write(ctx))
	if err != nil && !notFound(err) {
		return fmt.Errorf("stopping Nomad job %s: %w", name, err)
	}
	if purge {
		return r.deleteSecret(ctx, name)
	}
	return nil
}

// deleteSecret removes the variable of job name. Peek first: a job that
// never had one (a model server) needs no variable rights of the token,
// and Nomad answers a path the token may not read as if it were absent.
func (r *Runtime) deleteSecret(ctx context.Context, name string) error {
	path := SecretPath(name)
	v, _, err := r.c.Variables().Peek(path, r.query(ctx))
	if err != nil {
		return fmt.Errorf("reading the Nomad variable %s of job %s: %w", path, name, err)
	}
	if v == nil {
		return nil
	}
	if _, err := r.c.Variables().Delete(path, r.write(ctx)); err != nil && !notFound(err) {
		return fmt.Errorf("deleting the Nomad variable %s of job %s: %w", path, name, err)
	}
	return nil
}

// Phase is where a job's server is in its life.
type Phase string

const (
	Absent   Phase = "absent"   // no such job, or it is stopped
	Pending  Phase = "pending"  // registered; no allocation runs it yet
	Running  Phase = "running"  // an allocation's task runs (not yet known to answer)
	Failed   Phase = "failed"   // the latest allocation failed; Nomad may place another
	Complete Phase = "complete" // the server exited on its own and was not restarted
)

// Status is what Nomad says about a job.
type Status struct {
	Phase Phase
	// Address is host:port of the running allocation's port.
	Address string
	Node    string // name of the node that runs it
	Alloc   string // id of that allocation
	Reason  string // why the latest allocation is not running, from its task events
}

// Observe reads a job and its allocations. Of several allocations (an
// old one on a lost node, its replacement) the one Nomad wants running
// and that runs wins.
func (r *Runtime) Observe(ctx context.Context, name string) (Status, error) {
	job, _, err := r.c.Jobs().Info(name, r.query(ctx))
	if notFound(err) {
		return Status{Phase: Absent}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("reading Nomad job %s: %w", name, err)
	}
	if job.Stop != nil && *job.Stop {
		return Status{Phase: Absent}, nil
	}
	allocs, _, err := r.c.Jobs().Allocations(name, false, r.query(ctx))
	if err != nil {
		return Status{}, fmt.Errorf("reading allocations of Nomad job %s: %w", name, err)
	}
	// Newest first.
	sort.Slice(allocs, func(i, j int) bool { return allocs[i].CreateIndex > allocs[j].CreateIndex })
	for _, a := range allocs {
		if a.DesiredStatus != api.AllocDesiredStatusRun || a.ClientStatus != api.AllocClientStatusRunning {
			continue
		}
		addr, err := r.address(ctx, a.ID)
		if err != nil {
			return Status{}, fmt.Errorf("reading allocation %s of Nomad job %s: %w", a.ID, name, err)
		}
		return Status{Phase: Running, Node: a.NodeName, Alloc: a.ID, Address: addr}, nil
	}
	if len(allocs) == 0 {
		return Status{Phase: Pending}, nil
	}
	latest := allocs[0]
	st := Status{Node: latest.NodeName, Alloc: latest.ID, Reason: reason(latest)}
	switch latest.ClientStatus {
	case api.AllocClientStatusFailed, api.AllocClientStatusLost:
		st.Phase = Failed
	case api.AllocClientStatusComplete:
		st.Phase = Complete
	default:
		st.Phase = Pending
	}
	if st.Phase != Pending && latest.DesiredStatus == api.AllocDesiredStatusRun {
		// Nomad has not placed the replacement yet; it will.
		st.Phase = Pending
	}
	return st, nil
}

// address is host:port of an allocation's port. An allocation keeps its
// ports for life, so each is read from Nomad once.
func (r *Runtime) address(ctx context.Context, alloc string) (string, error) {
	if v, ok := r.addrs.Load(alloc); ok {
		return v.(string), nil
	}
	full, _, err := r.c.Allocations().Info(alloc, r.query(ctx))
	if err != nil {
		return "", err
	}
	addr := ""
	if full.AllocatedResources != nil {
		for _, p := range full.AllocatedResources.Shared.Ports {
			if p.Label == PortLabel {
				addr = net.JoinHostPort(p.HostIP, strconv.Itoa(p.Value))
			}
		}
	}
	if addr != "" {
		r.addrs.Store(alloc, addr)
	}
	return addr, nil
}

// Healthy reports whether the server at address answers path with 200.
func (r *Runtime) Healthy(ctx context.Context, address, path string) bool {
	if address == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+address+path, nil)
	if err != nil {
		return false
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Names lists the jobs whose name starts with prefix.
func (r *Runtime) Names(ctx context.Context, prefix string) ([]string, error) {
	q := r.query(ctx)
	q.Prefix = prefix
	jobs, _, err := r.c.Jobs().List(q)
	if err != nil {
		return nil, fmt.Errorf("listing Nomad jobs %s*: %w", prefix, err)
	}
	var out []string
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out, nil
}

// LogTail is the end of the server's output (stderr, where MLflow and
// uvicorn log) in its latest allocation, for a failure message.
func (r *Runtime) LogTail(ctx context.Context, name string, max int64) string {
	allocs, _, err := r.c.Jobs().Allocations(name, false, r.query(ctx))
	if err != nil || len(allocs) == 0 {
		return ""
	}
	sort.Slice(allocs, func(i, j int) bool { return allocs[i].CreateIndex > allocs[j].CreateIndex })
	a, _, err := r.c.Allocations().Info(allocs[0].ID, r.query(ctx))
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	q := r.query(ctx)
	frames, errc := r.c.AllocFS().Logs(a, false, "server", "stderr", "end", max, ctx.Done(), q)
	var b strings.Builder
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				return b.String()
			}
			if f != nil {
				b.Write(f.Data)
			}
		case <-errc:
			return b.String()
		case <-ctx.Done():
			return b.String()
		}
	}
}

func (r *Runtime) write(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{Namespace: r.cfg.Namespace}).WithContext(ctx)
}

func (r *Runtime) query(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{Namespace: r.cfg.Namespace}).WithContext(ctx)
}

// reason is the last telling task event of an allocation.
func reason(a *api.AllocationListStub) string {
	for _, ts := range a.TaskStates {
		for i := len(ts.Events) - 1; i >= 0; i-- {
			e := ts.Events[i]
			if msg := cmp.Or(e.DisplayMessage, e.Message); msg != "" {
				return e.Type + ": " + msg
			}
		}
	}
	return "allocation " + a.ClientStatus
}

func tags(meta map[string]string) []string {
	var out []string
	for k, v := range meta {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func notFound(err error) bool {
	var re api.UnexpectedResponseError
	if errors.As(err, &re) {
		return re.StatusCode() == http.StatusNotFound
	}
	return err != nil && strings.Contains(err.Error(), "404")
}

func ptr[T any](v T) *T { return &v }
