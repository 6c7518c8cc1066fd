package projects

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

func configFor(t *testing.T, env map[string]string) Config {
	t.Helper()
	for _, k := range []string{"AUTH", "PUBLIC_URL", "TRACKING_TCP", "IDLE_TIMEOUT", "MLFLOW_PRELOAD", "HTTP_ADDR", "HOME"} {
		t.Setenv(conf.Prefix+k, env[k])
	}
	c, err := ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// With auth off and no public URL, a client configured from mlflowUri
// still goes through the gateway (so the panel sees every use and may
// put an idle project to sleep), and the server has no TCP port to
// bypass it; projects sleep after 15 minutes unless told otherwise.
func TestMlflowURIIsTheGatewayWithAuthOff(t *testing.T) {
	c := configFor(t, map[string]string{"AUTH": "false", "HTTP_ADDR": "0.0.0.0:8080", "HOME": t.TempDir()})
	p := domain.Project{ID: "7", Name: "churn", Port: 5007}
	if got, want := c.advertiseURL(p), "http://127.0.0.1:8080/projects/churn/mlflow"; got != want {
		t.Errorf("mlflowUri %q, want the gateway's proxy %q", got, want)
	}
	if _, ok := sockhttp.Socket(c.internalURL(p)); !ok {
		t.Errorf("internalUrl %q, want a Unix socket", c.internalURL(p))
	}
	if c.IdleTimeout != 15*time.Minute {
		t.Errorf("default idle timeout %s, want 15m", c.IdleTimeout)
	}
	if !c.Preload {
		t.Error("tracking servers are not forked from the warm MLflow by default")
	}

	pub := configFor(t, map[string]string{"PUBLIC_URL": "https://panel.example.com", "HOME": t.TempDir()})
	if got := pub.advertiseURL(p); got != "https://panel.example.com/projects/churn/mlflow" {
		t.Errorf("with MLPANEL_PUBLIC_URL, mlflowUri %q", got)
	}

	// MLPANEL_TRACKING_TCP (compose) keeps a TCP address, still behind the gateway.
	tcp := configFor(t, map[string]string{"TRACKING_TCP": "true", "HOME": t.TempDir()})
	if got := tcp.internalURL(p); !strings.HasPrefix(got, "http://127.0.0.1:5007/") {
		t.Errorf("with MLPANEL_TRACKING_TCP, internalUrl %q", got)
	}
	if got := tcp.advertiseURL(p); !strings.HasPrefix(got, "http://127.0.0.1:8080/") {
		t.Errorf("with MLPANEL_TRACKING_TCP, mlflowUri %q, want the gateway", got)
	}
}

// MLPANEL_RUNTIME is local unless set; a cluster runtime without the
// setting that points at its cluster stops the service at start with a
// message naming that setting, before it touches NATS or the database; a
// value that is no runtime is refused naming the choices.
func TestRuntimeSetting(t *testing.T) {
	t.Setenv(conf.Prefix+"RUNTIME", "")
	c := configFor(t, map[string]string{"HOME": t.TempDir()})
	if c.Runtime != conf.RuntimeLocal {
		t.Fatalf("default runtime %q, want local", c.Runtime)
	}
	// Nomad without its address: the start says what to set.
	t.Setenv(conf.Prefix+"RUNTIME", "nomad")
	t.Setenv(conf.Prefix+"NOMAD_ADDR", "")
	nc := configFor(t, map[string]string{"HOME": t.TempDir()})
	if err := Run(context.Background(), nc, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "MLPANEL_NOMAD_ADDR") {
		t.Errorf("start with MLPANEL_RUNTIME=nomad and no MLPANEL_NOMAD_ADDR: %v, want an error naming MLPANEL_NOMAD_ADDR", err)
	}
	// Kubernetes outside a cluster and without a kubeconfig: the start
	// fails saying which setting points the service at one.
	t.Setenv(conf.Prefix+"RUNTIME", "kubernetes")
	t.Setenv(conf.Prefix+"KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	kc := configFor(t, map[string]string{"HOME": t.TempDir()})
	if err := Run(context.Background(), kc, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "MLPANEL_KUBECONFIG") {
		t.Errorf("start with MLPANEL_RUNTIME=kubernetes outside a cluster: %v, want an error naming MLPANEL_KUBECONFIG", err)
	}
	t.Setenv(conf.Prefix+"RUNTIME", "docker")
	if _, err := ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "MLPANEL_RUNTIME") || !strings.Contains(err.Error(), "kubernetes") {
		t.Errorf("MLPANEL_RUNTIME=docker: %v, want an error naming the setting and the runtimes", err)
	}
}
