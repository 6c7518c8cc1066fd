package adapters

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/mlpanel/mlpanel/pkg/platform/kube"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// KubeConfig is the projects service's settings of MLPANEL_RUNTIME=kubernetes.
type KubeConfig struct {
	kube.Config
	// VolumeSize is the size of the PersistentVolumeClaim that holds a
	// project's SQLite database and artifacts.
	VolumeSize string `env:"MLPANEL_KUBE_VOLUME_SIZE" envDefault:"10Gi"`
	// StorageClass of the projects' volumes; empty is the cluster's
	// default class.
	StorageClass string `env:"MLPANEL_KUBE_STORAGE_CLASS"`
	// ArtifactsDestination is where projects with a SQL backend keep their
	// artifacts (e.g. s3://bucket/mlpanel; MLflow's --artifacts-destination,
	// the project's id appended): such a project then needs no volume.
	// Empty: a volume holds the artifacts of every project.
	ArtifactsDestination string `env:"MLPANEL_KUBE_ARTIFACTS_DESTINATION"`
}

// trackingPort is where a tracking server listens in its pod.
const trackingPort = 5000

// dataDir is where a project's volume is mounted.
const dataDir = "/var/lib/mlpanel/project"

// Kube is the runtime of MLPANEL_RUNTIME=kubernetes: each project's
// tracking server is a Deployment of one replica with a Service and a
// volume claim (pkg/platform/kube). Sleep scales it to 0, keeping the
// objects, so waking is a scale to 1.
type Kube struct {
	Cluster *kube.Cluster
	Config  KubeConfig
	// Workers, Jobs, ProjectDBURL, ProjectMySQLURL mean what they mean
	// for MLflowServers.
	Workers         int
	Jobs            bool
	ProjectDBURL    string
	ProjectMySQLURL string
}

var _ app.Runtime = (*Kube)(nil)

// NewKube connects to the cluster of cfg.
func NewKube(cfg KubeConfig, workers int, jobs bool, projectDBURL, projectMySQLURL string) (*Kube, error) {
	if _, err := resource.ParseQuantity(cfg.VolumeSize); err != nil {
		return nil, fmt.Errorf("MLPANEL_KUBE_VOLUME_SIZE=%q: %w: use a quantity such as 10Gi", cfg.VolumeSize, err)
	}
	if err := CheckArtifactsDestination("MLPANEL_KUBE_ARTIFACTS_DESTINATION", cfg.ArtifactsDestination); err != nil {
		return nil, err
	}
	c, err := kube.Connect(cfg.Config)
	if err != nil {
		return nil, err
	}
	return &Kube{Cluster: c, Config: cfg, Workers: workers, Jobs: jobs, ProjectDBURL: projectDBURL, ProjectMySQLURL: projectMySQLURL}, nil
}

// TrackingName is the name of the objects of a project's tracking server.
func TrackingName(p domain.Project) string { return kube.Name("mlpanel-tracking", p.ID) }

// Workload is what runs the tracking server of p.
func (k *Kube) Workload(p domain.Project) (kube.Workload, error) {
	name := TrackingName(p)
	w := kube.Workload{
		Name: name, Project: p.ID, Kind: kube.KindTracking,
		Labels: map[string]string{"mlpanel.io/project-name": p.Name},
		Port:   trackingPort,
		Probe:  PathPrefix(p) + "/health",
		Env: map[string]string{
			"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": strconv.FormatBool(k.Jobs),
			"GIT_PYTHON_REFRESH":                 "quiet",
		},
	}
	svc := name + "." + k.Cluster.Namespace + ".svc"
	args := []string{"mlflow", "server",
		"--host", "0.0.0.0",
		"--port", strconv.Itoa(trackingPort),
		"--workers", strconv.Itoa(max(k.Workers, 1)),
		"--static-prefix", PathPrefix(p),
		"--serve-artifacts",
		// Other pods reach the server by its Service's name, which
		// MLflow's host check refuses unless listed.
		"--allowed-hosts", strings.Join([]string{svc, svc + ":*", name, name + ":*", "localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"}, ","),
	}
	volume := &kube.Volume{MountPath: dataDir, Size: k.Config.VolumeSize, StorageClass: k.Config.StorageClass}
	artifacts := dataDir + "/artifacts"
	if p.OnServer() {
		uri, err := ServerStoreURI(p, k.ProjectDBURL, k.ProjectMySQLURL)
		if err != nil {
			return w, err
		}
		w.Secret = map[string]string{"MLFLOW_BACKEND_STORE_URI": uri}
		if d, ok := ArtifactsDestination(k.Config.ArtifactsDestination, p); ok {
			artifacts, volume = d, nil
		}
	} else {
		args = append(args, "--backend-store-uri", "sqlite:///"+dataDir+"/mlflow.db")
	}
	w.Command = append(args, "--artifacts-destination", artifacts)
	w.Volume = volume
	return w, nil
}

// Start applies the project's objects with one replica: it creates them,
// updates them to p, or wakes a server scaled to 0, never a second copy.
func (k *Kube) Start(ctx context.Context, p domain.Project) (app.Server, error) {
	w, err := k.Workload(p)
	if err != nil {
		return nil, err
	}
	if err := k.Cluster.Apply(ctx, w); err != nil {
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			err = reconcile.Terminal(err) // the service account's rules or the settings must change first
		}
		return nil, fmt.Errorf("starting the tracking server of project %s on Kubernetes: %w", p.Name, err)
	}
	srv := k.server(p, w.Name)
	// Pods of the spec before this start (an update replaces them) are
	// not restarts of this server; a second of slack for the clocks.
	srv.since = time.Now().Add(-time.Second)
	return srv, nil
}

// Adopt finds the project's tracking server by its labels; one scaled to
// 0 (asleep) is not a running server.
func (k *Kube) Adopt(ctx context.Context, p domain.Project) (app.Server, error) {
	found, err := k.Cluster.Find(ctx, map[string]string{kube.LabelProject: p.ID, kube.LabelKind: kube.KindTracking})
	if err != nil {
		return nil, fmt.Errorf("looking for the tracking server of project %s on Kubernetes: %w", p.Name, err)
	}
	for _, f := range found {
		if f.Replicas > 0 {
			return k.server(p, f.Name), nil
		}
	}
	return nil, nil
}

// Healthy asks the server at the address Observe reported.
func (k *Kube) Healthy(ctx context.Context, p domain.Project) bool {
	if p.InternalURL == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.InternalURL+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Logs are the output of the server's newest pod.
func (k *Kube) Logs(ctx context.Context, p domain.Project, n int) (string, error) {
	return k.Cluster.Logs(ctx, TrackingName(p), int64(n))
}

// Usage needs the cluster's metrics API, which the panel does not read.
func (k *Kube) Usage(context.Context, domain.Project) (app.Usage, error) {
	return app.Usage{}, app.ErrNoUsage
}

// Purge deletes the project's anchor: the cluster's garbage collector
// removes its volume and anything else of the project left.
func (k *Kube) Purge(ctx context.Context, p domain.Project) error {
	return k.Cluster.DeleteProject(ctx, p.ID)
}

func (k *Kube) server(p domain.Project, name string) *kubeServer {
	return &kubeServer{k: k, name: name, addr: k.Cluster.Address(name, trackingPort) + PathPrefix(p), pods: map[string]int32{},
		// Until the API answers, the server is on its way (not a crash).
		last: app.Observation{Alive: true}}
}

// healthClient asks servers in the cluster (no proxy from the environment:
// Service names resolve only inside the cluster).
var healthClient = &http.Client{Transport: &http.Transport{Proxy: nil}}

// kubeObserveEvery bounds the API reads of Observe, which runs every tick.
const kubeObserveEvery = 2 * time.Second

type kubeServer struct {
	k    *Kube
	name string
	addr string

	mu    sync.Mutex
	at    time.Time
	last  app.Observation
	pods  map[string]int32 // restarts by pod uid, every pod seen since Start/Adopt
	since time.Time        // pods created before are not this server's (zero: adopted, all are)
	base  int              // restarts already there at Start/Adopt
	seen  bool
}

// Observe reads the Deployment and its pods (at most every
// kubeObserveEvery): a pod that is not ready has no address, a pod replaced
// or a container restarted counts as a restart.
func (s *kubeServer) Observe(ctx context.Context) app.Observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.at.IsZero() && time.Since(s.at) < kubeObserveEvery {
		return s.last
	}
	st, err := s.k.Cluster.Observe(ctx, s.name)
	if err != nil {
		// The API is unreachable: the server runs on as far as anyone knows.
		return s.last
	}
	s.at = time.Now()
	for _, p := range st.Pods {
		if p.Created.Before(s.since) {
			continue
		}
		s.pods[p.UID] = max(s.pods[p.UID], p.Restarts)
	}
	restarts := len(s.pods) - 1
	for _, n := range s.pods {
		restarts += int(n)
	}
	if !s.seen && len(s.pods) > 0 {
		s.base, s.seen = max(restarts, 0), true
	}
	o := app.Observation{Alive: true, Restarts: max(restarts-s.base, 0), Reason: st.Reason}
	switch st.State {
	case kube.Running:
		o.Address = s.addr
	case kube.Gone:
		o = app.Observation{Reason: fmt.Sprintf("the Deployment %s/%s was deleted outside the panel", s.k.Cluster.Namespace, s.name)}
	case kube.Asleep:
		o = app.Observation{Reason: fmt.Sprintf("the Deployment %s/%s was scaled to 0 outside the panel", s.k.Cluster.Namespace, s.name)}
	case kube.Failed:
		if st.Restarts == 0 { // an image or a setting that waiting does not fix
			o = app.Observation{Reason: st.Reason}
		}
	}
	s.last = o
	return o
}

// Stop is sleep: scale to 0, objects and volume kept.
func (s *kubeServer) Stop(ctx context.Context) error {
	if err := s.k.Cluster.Scale(ctx, s.name, 0); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	s.forget()
	return nil
}

// Remove deletes the Deployment, Service and Secret; the volume stays
// until Purge.
func (s *kubeServer) Remove(ctx context.Context) error {
	if err := s.k.Cluster.Delete(ctx, s.name); err != nil {
		return err
	}
	s.forget()
	return nil
}

func (s *kubeServer) forget() {
	s.mu.Lock()
	s.at = time.Time{}
	s.mu.Unlock()
}

func (s *kubeServer) Ref() app.Ref { return app.Ref{Name: s.k.Cluster.Namespace + "/" + s.name} }
