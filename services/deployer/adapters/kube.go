package adapters

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/mlpanel/mlpanel/pkg/platform/kube"
	"github.com/mlpanel/mlpanel/services/deployer/app"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// modelPort is where a model server listens in its pod.
const modelPort = 8080

// Kube runs each local deployment's model server as a Deployment of one
// replica with a Service (pkg/platform/kube), labelled with its project
// and owned by the project's anchor, so deleting the project on the
// cluster deletes its model servers too. Each model version is its own
// workload, so a rollover runs the new version beside the old one.
type Kube struct {
	Cluster *kube.Cluster
	Home    string // data home: the progress log of each deployment
	Workers int
}

var _ app.Backend = (*Kube)(nil)

// NewKube connects to the cluster of cfg.
func NewKube(cfg kube.Config, home string, workers int) (*Kube, error) {
	c, err := kube.Connect(cfg)
	if err != nil {
		return nil, err
	}
	return &Kube{Cluster: c, Home: home, Workers: workers}, nil
}

// ModelName is the name of the objects of a deployment's model server
// for its version d.Version.
func ModelName(d domain.Deployment) string { return kube.Name("mlpanel-model", d.ID, "v"+d.Version) }

// Workload is what serves d's model version.
func (k *Kube) Workload(t app.Target) kube.Workload {
	d := t.Deployment
	return kube.Workload{
		Name: ModelName(d), Project: d.ProjectID, Kind: kube.KindModel,
		Labels: map[string]string{kube.LabelDeployment: d.ID, kube.LabelVersion: kube.Name(d.Version)},
		Command: []string{"mlflow", "models", "serve",
			"-m", d.ModelURI,
			"--env-manager", "local",
			"-h", "0.0.0.0",
			"-p", strconv.Itoa(modelPort),
			"-w", strconv.Itoa(max(k.Workers, 1)),
		},
		Env:   map[string]string{"MLFLOW_TRACKING_URI": t.TrackingURI, "GIT_PYTHON_REFRESH": "quiet"},
		Port:  modelPort,
		Probe: "/ping",
	}
}

// LogFile is the deployment's progress on the cluster (what was applied,
// why a pod does not get ready); the server's own output is its pod's log.
func (k *Kube) LogFile(d domain.Deployment) string {
	return filepath.Join(k.Home, "deployments", d.ID, "kubernetes.log")
}

func (k *Kube) note(d domain.Deployment, format string, args ...any) {
	if err := os.MkdirAll(filepath.Dir(k.LogFile(d)), 0o755); err != nil {
		return
	}
	f, err := os.OpenFile(k.LogFile(d), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// TrackingURI is the project's Service: model servers run in the cluster
// beside it.
func (k *Kube) TrackingURI(p app.Project) string { return p.InternalURL }

// Start applies the model server's objects; the deployer waits for Ready.
func (k *Kube) Start(ctx context.Context, t app.Target, _ func(domain.Stage)) (app.Server, error) {
	w := k.Workload(t)
	if err := k.Cluster.Apply(ctx, w); err != nil {
		k.note(t.Deployment, "applying %s failed: %v", w.Name, err)
		// Nothing of a failed start may keep running.
		if derr := k.Cluster.Delete(context.WithoutCancel(ctx), w.Name); derr != nil {
			k.note(t.Deployment, "removing the half-applied %s failed: %v", w.Name, derr)
		}
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
			return nil, &app.Permanent{Err: err}
		}
		return nil, err
	}
	k.note(t.Deployment, "applied Deployment and Service %s/%s (model %s)", k.Cluster.Namespace, w.Name, t.Deployment.ModelURI)
	return &kubeModel{k: k, d: t.Deployment, name: w.Name}, nil
}

// Adopt finds the model server of d's version by its name; one scaled to
// 0 or deleted is gone.
func (k *Kube) Adopt(ctx context.Context, d domain.Deployment) (app.Server, bool) {
	name := d.InstanceName
	if name == "" {
		name = ModelName(d)
	}
	st, err := k.Cluster.Observe(ctx, name)
	if err != nil || st.State == kube.Gone || st.State == kube.Asleep {
		return nil, false
	}
	return &kubeModel{k: k, d: d, name: name}, true
}

type kubeModel struct {
	k    *Kube
	d    domain.Deployment
	name string
}

func (s *kubeModel) status(ctx context.Context) (kube.Status, bool) {
	st, err := s.k.Cluster.Observe(ctx, s.name)
	return st, err == nil
}

// Alive: the Deployment exists and can get ready; a crash loop or a bad
// image is not alive, so the deployer counts a failure with its reason.
func (s *kubeModel) Alive(ctx context.Context) bool {
	st, ok := s.status(ctx)
	if !ok {
		return true // the API is unreachable: as far as anyone knows it serves
	}
	if st.State == kube.Failed {
		s.k.note(s.d, "%s: %s", s.name, st.Reason)
	}
	return st.State == kube.Running || st.State == kube.Starting
}

// Ready: a pod passed the readiness probe, which is /ping.
func (s *kubeModel) Ready(ctx context.Context) bool {
	st, ok := s.status(ctx)
	return ok && st.State == kube.Running
}

func (s *kubeModel) Stop(ctx context.Context) error {
	if err := s.k.Cluster.Delete(ctx, s.name); err != nil {
		return err
	}
	s.k.note(s.d, "deleted %s", s.name)
	return nil
}

func (s *kubeModel) Apply(d *domain.Deployment) {
	d.Host, d.Port = s.name+"."+s.k.Cluster.Namespace+".svc", modelPort
	d.URL = s.k.Cluster.Address(s.name, modelPort)
	d.InstanceName, d.Pid, d.PidStart = s.name, 0, 0
}

// Local is false: the cluster keeps the server when the deployer exits,
// and the next deployer adopts it.
func (s *kubeModel) Local() bool { return false }

func (s *kubeModel) Predict(ctx context.Context, body []byte) error {
	return invoke(ctx, s.k.Cluster.Address(s.name, modelPort), body)
}
