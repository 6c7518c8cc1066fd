package deployer

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
)

// The deployer reads MLPANEL_RUNTIME too: local by default, and a
// cluster runtime this build does not wire stops it at start with a
// message naming the way out, before it touches NATS or the database.
func TestRuntimeSetting(t *testing.T) {
	t.Setenv(conf.Prefix+"HOME", t.TempDir())
	t.Setenv(conf.Prefix+"RUNTIME", "")
	c, err := ConfigFromEnv()
	if err != nil || c.Runtime != conf.RuntimeLocal {
		t.Fatalf("default runtime %q (%v), want local", c.Runtime, err)
	}
	// Nomad without its address: the start says what to set.
	t.Setenv(conf.Prefix+"RUNTIME", "nomad")
	t.Setenv(conf.Prefix+"NOMAD_ADDR", "")
	nc, err := ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), nc, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "MLPANEL_NOMAD_ADDR") {
		t.Errorf("start with MLPANEL_RUNTIME=nomad and no MLPANEL_NOMAD_ADDR: %v, want an error naming MLPANEL_NOMAD_ADDR", err)
	}
	// Kubernetes outside a cluster and without a kubeconfig: the start
	// fails saying which setting points the service at one.
	t.Setenv(conf.Prefix+"RUNTIME", "kubernetes")
	t.Setenv(conf.Prefix+"KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	kc, err := ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), kc, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "MLPANEL_KUBECONFIG") {
		t.Errorf("start with MLPANEL_RUNTIME=kubernetes outside a cluster: %v, want an error naming MLPANEL_KUBECONFIG", err)
	}
	t.Setenv(conf.Prefix+"RUNTIME", "swarm")
	if _, err := ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "MLPANEL_RUNTIME") {
		t.Errorf("MLPANEL_RUNTIME=swarm: %v, want an error naming the setting", err)
	}
}
