package kube

import (
	"errors"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is how the panel reaches the cluster its servers run on
// (MLPANEL_RUNTIME=kubernetes).
type Config struct {
	// Kubeconfig is a kubeconfig file; empty uses the service account of
	// the pod the panel runs in (in-cluster config).
	Kubeconfig string `env:"MLPANEL_KUBECONFIG"`
	// Namespace holds the servers' objects; empty is the kubeconfig
	// context's namespace, or the pod's own namespace in the cluster.
	Namespace string `env:"MLPANEL_KUBE_NAMESPACE" conf:"computed"`
	// Image runs `mlflow server` and `mlflow models serve`: the panel's
	// projects image carries the pinned MLflow in its PATH.
	Image string `env:"MLPANEL_KUBE_IMAGE" envDefault:"mlpanel/projects:latest"`
}

// Connect opens the cluster of cfg.
func Connect(cfg Config) (*Cluster, error) {
	if cfg.Image == "" {
		return nil, errors.New("MLPANEL_KUBE_IMAGE is empty: set it to an image with MLflow on its PATH (the panel's projects image has it)")
	}
	var (
		rc  *rest.Config
		ns  string
		err error
	)
	if cfg.Kubeconfig != "" {
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: cfg.Kubeconfig}, &clientcmd.ConfigOverrides{})
		if rc, err = cc.ClientConfig(); err != nil {
			return nil, fmt.Errorf("reading MLPANEL_KUBECONFIG %s: %w", cfg.Kubeconfig, err)
		}
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, fmt.Errorf("reading the namespace of MLPANEL_KUBECONFIG %s: %w", cfg.Kubeconfig, err)
		}
	} else {
		if rc, err = rest.InClusterConfig(); err != nil {
			if errors.Is(err, rest.ErrNotInCluster) {
				return nil, fmt.Errorf("MLPANEL_RUNTIME=kubernetes outside a cluster: set MLPANEL_KUBECONFIG to a kubeconfig file of the cluster to run the servers on")
			}
			return nil, fmt.Errorf("reading the in-cluster config: %w", err)
		}
		ns = inClusterNamespace()
	}
	if cfg.Namespace != "" {
		ns = cfg.Namespace
	}
	if ns == "" {
		ns = "default"
	}
	return NewCluster(rc, ns, cfg.Image)
}

// NewCluster is the cluster behind rc, with the servers in namespace ns
// running image.
func NewCluster(rc *rest.Config, ns, image string) (*Cluster, error) {
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "mlpanel"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("building the Kubernetes client: %w", err)
	}
	return &Cluster{Client: cs, Namespace: ns, Image: image}, nil
}
