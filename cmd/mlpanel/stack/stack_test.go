package stack

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
)

// TestStartFailsCleanly: a missing mlflow is a clear error, not a panic,
// and what had started is stopped again.
func TestStartFailsCleanly(t *testing.T) {
	var r conf.Reader
	cfg := ConfigFromEnv(&r)
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.Mlflow = "/nonexistent/mlflow"
	cfg.NATSListen, cfg.MongoListen, cfg.Gateway.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	s, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		s.Close()
		t.Fatal("Start succeeded without an mlflow executable")
	}
	if !strings.Contains(err.Error(), "/nonexistent/mlflow") || !strings.Contains(err.Error(), "make venv") {
		t.Fatalf("error %q does not name the executable and the fix", err)
	}
}
