package projects

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
)

// MLPANEL_RUNTIME=nomad without MLPANEL_NOMAD_ADDR, or with a driver
// Nomad runs no server with, stops the service at start naming the
// setting to fix, before it touches NATS or the database.
func TestNomadRuntimeSettings(t *testing.T) {
	t.Setenv(conf.Prefix+"RUNTIME", "nomad")
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HOME": t.TempDir()}, "MLPANEL_NOMAD_ADDR"},
		{map[string]string{"HOME": t.TempDir(), "NOMAD_ADDR": "http://127.0.0.1:4646", "NOMAD_DRIVER": "exec"}, "MLPANEL_NOMAD_DRIVER"},
		{map[string]string{"HOME": t.TempDir(), "NOMAD_ADDR": "http://127.0.0.1:4646", "NOMAD_DRIVER": "docker"}, "MLPANEL_NOMAD_IMAGE"},
		{map[string]string{"HOME": t.TempDir(), "NOMAD_ADDR": "http://127.0.0.1:4646", "NOMAD_ARTIFACTS_DESTINATION": "shared/artifacts"}, "MLPANEL_NOMAD_ARTIFACTS_DESTINATION"},
	} {
		c := nomadConfig(t, tc.env)
		err := Run(context.Background(), c, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: start error %v, want one naming %s", tc.env, err, tc.want)
		}
	}
	c := nomadConfig(t, map[string]string{"HOME": t.TempDir(), "NOMAD_ADDR": "http://127.0.0.1:4646", "NOMAD_DATACENTERS": "dc1,dc2"})
	if got := strings.Join(c.Nomad.Datacenters, " "); got != "dc1 dc2" || c.Nomad.Driver != "raw_exec" {
		t.Errorf("MLPANEL_NOMAD_DATACENTERS=dc1,dc2: datacenters %q, driver %q; want dc1 dc2 and the raw_exec default", got, c.Nomad.Driver)
	}
	for _, dest := range []string{"/mnt/shared/artifacts", "s3://bucket/mlpanel", "gs://bucket"} {
		c = nomadConfig(t, map[string]string{"HOME": t.TempDir(), "NOMAD_ADDR": "http://127.0.0.1:4646", "NOMAD_ARTIFACTS_DESTINATION": dest})
		if c.NomadArtifacts != dest {
			t.Errorf("MLPANEL_NOMAD_ARTIFACTS_DESTINATION=%s read as %q", dest, c.NomadArtifacts)
		}
		if _, err := c.nomadRuntime(nil, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			t.Errorf("MLPANEL_NOMAD_ARTIFACTS_DESTINATION=%s refused: %v", dest, err)
		}
	}
}

func nomadConfig(t *testing.T, env map[string]string) Config {
	t.Helper()
	for _, k := range []string{"NOMAD_ADDR", "NOMAD_DRIVER", "NOMAD_IMAGE", "NOMAD_DATACENTERS", "NOMAD_ARTIFACTS_DESTINATION"} {
		if v, ok := env[k]; ok {
			t.Setenv(conf.Prefix+k, v)
		} else {
			t.Setenv(conf.Prefix+k, "")
		}
	}
	return configFor(t, env)
}
