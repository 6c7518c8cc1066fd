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
	for _, name := range []string{"nomad", "kubernetes"} {
		t.Setenv(conf.Prefix+"RUNTIME", name)
		c, err := ConfigFromEnv()
		if err != nil {
			t.Fatal(err)
		}
		err = Run(context.Background(), c, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), "MLPANEL_RUNTIME="+name) || !strings.Contains(err.Error(), "deployer") {
			t.Errorf("start with MLPANEL_RUNTIME=%s: %v, want an error naming it", name, err)
		}
	}
	t.Setenv(conf.Prefix+"RUNTIME", "swarm")
	if _, err := ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "MLPANEL_RUNTIME") {
		t.Errorf("MLPANEL_RUNTIME=swarm: %v, want an error naming the setting", err)
	}
}
