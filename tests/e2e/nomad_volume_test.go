package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadtest"
)

// hostVolumeOf is the Nomad host volume named name, if there is one.
func hostVolumeOf(t *testing.T, c *nomadtest.Cluster, name string) *api.HostVolumeStub {
	t.Helper()
	vols, _, err := c.Client().HostVolumes().List(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// TestNomadHostVolume: with MLPANEL_NOMAD_VOLUME=host a project's
// database and artifacts live on a dynamic host volume made for it on
// its first start, and its job runs on that volume's node. Its runs stay
// across a sleep and a wake; when the node dies the project waits for it
// (starting, its lastError naming the node, past the start timeout,
// never placed empty on the other node) and comes back there with its
// runs; deleting the project deletes the volume.
func TestNomadHostVolume(t *testing.T) {
	c := nomadtest.Start(t, 2)
	cfg := panelCfg
	home := t.TempDir()
	cfg.Home, cfg.Projects.Home = home, home
	cfg.Gateway.Addr = "127.0.0.1:0"
	cfg.Projects.IdleTimeout = 0
	// Short, so the wait for the lost node outlasts it.
	cfg.Projects.StartTimeout = 90 * time.Second
	nc := nomadrt.Config{Addr: c.Addr, Driver: nomadrt.RawExec, Datacenters: []string{c.Datacenter}, Volume: nomadrt.VolumeHost}
	cfg.Projects.Runtime, cfg.Projects.Nomad = conf.RuntimeNomad, nc
	cfg.Deployer.Runtime, cfg.Deployer.Nomad = conf.RuntimeNomad, nc
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)

	r := at(t, s.URL, http.MethodPost, "/projects", map[string]string{"name": "vol-a"})
	expect(t, r, http.StatusCreated)
	var p project
	r.JSON(t, &p)
	job := "mlpanel-project-" + p.ID
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	waitSleepy(t, s.URL, p.ID, "running", 3*time.Minute)

	vol := hostVolumeOf(t, c, job)
	if vol == nil {
		t.Fatalf("project %s runs, but Nomad has no host volume %s", p.Name, job)
	}
	node := c.NodeName(vol.NodeID)
	if allocs := jobAllocs(t, c, p.ID); len(allocs) != 1 || allocs[0].NodeName != node {
		t.Fatalf("the job runs on %v; its volume is on %s", nodeNames(allocs), node)
	}
	full, _, err := c.Client().HostVolumes().Get(vol.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := logRun(t, s.URL, "vol-a", "on-the-volume")
	if _, err := os.Stat(filepath.Join(full.HostPath, "mlflow.db")); err != nil {
		t.Fatalf("the project's database is not on its volume: %v", err)
	}

	// The panel's own API reads the run too.
	expect(t, at(t, s.URL, http.MethodGet, "/runs/"+run+"?project_id="+p.ID, nil), http.StatusOK)

	// Sleep and wake: the job stops and runs again on the same volume.
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+p.ID, map[string]string{"idleTimeout": "3s"}), http.StatusOK)
	waitSleepy(t, s.URL, p.ID, "sleeping", time.Minute)
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+p.ID, map[string]string{"idleTimeout": "720h"}), http.StatusOK)
	expect(t, at(t, s.URL, http.MethodGet, "/projects/vol-a/mlflow/api/2.0/mlflow/runs/get?run_id="+run, nil), http.StatusOK)
	waitSleepy(t, s.URL, p.ID, "running", time.Minute)

	// The volume's node dies: the project waits for it, past the start
	// timeout, and is never placed on the other node.
	c.Kill(node)
	waitSleepy(t, s.URL, p.ID, "starting", 2*time.Minute)
	deadline := time.Now().Add(cfg.Projects.StartTimeout + 15*time.Second)
	for time.Now().Before(deadline) {
		waitSleepy(t, s.URL, p.ID, "starting", 5*time.Second)
		if allocs := jobAllocs(t, c, p.ID); len(allocs) != 0 {
			t.Fatalf("the job runs on %v while %s, which holds its volume, is down", nodeNames(allocs), node)
		}
		time.Sleep(3 * time.Second)
	}
	if got := getAt(t, s.URL, p.ID); got.Status != "starting" || !strings.Contains(got.LastError, "node "+node) {
		t.Fatalf("project while its node is down: status %s, lastError %q; want starting, naming node %s", got.Status, got.LastError, node)
	}

	// The node is back: so is the project, there, with its run.
	c.Restart(node)
	waitSleepy(t, s.URL, p.ID, "running", 3*time.Minute)
	if allocs := jobAllocs(t, c, p.ID); len(allocs) != 1 || allocs[0].NodeName != node {
		t.Fatalf("after the node came back the job runs on %v, want %s", nodeNames(allocs), node)
	}
	expect(t, at(t, s.URL, http.MethodGet, "/projects/vol-a/mlflow/api/2.0/mlflow/runs/get?run_id="+run, nil), http.StatusOK)

	// Delete: the job and the volume go.
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
	waitSleepy(t, s.URL, p.ID, "terminated", time.Minute)
	if hostVolumeOf(t, c, job) == nil {
		t.Fatal("terminating the project removed its volume; only deleting it may")
	}
	expect(t, at(t, s.URL, http.MethodDelete, "/projects/"+p.ID, nil), http.StatusOK)
	if v := hostVolumeOf(t, c, job); v != nil {
		t.Fatalf("the deleted project's volume %s (%s) is still there", job, v.ID)
	}
	if _, err := os.Stat(full.HostPath); err == nil {
		t.Fatalf("the deleted project's volume folder %s is still there", full.HostPath)
	}
}
