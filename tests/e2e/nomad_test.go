package e2e

import (
	"context"
	"net/http"
	"slices"
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

// nomadPanel starts a panel whose projects and model servers run on the
// Nomad cluster c, with its data home at home; each option changes the
// settings further.
func nomadPanel(t *testing.T, c *nomadtest.Cluster, home string, options ...func(*stack.Config)) *stack.Stack {
	t.Helper()
	cfg := panelCfg
	cfg.Home, cfg.Projects.Home = home, home
	cfg.Gateway.Addr = "127.0.0.1:0"
	cfg.Projects.IdleTimeout = 0
	nc := nomadrt.Config{Addr: c.Addr, Driver: nomadrt.RawExec, Datacenters: []string{c.Datacenter}}
	cfg.Projects.Runtime, cfg.Projects.Nomad = conf.RuntimeNomad, nc
	cfg.Deployer.Runtime, cfg.Deployer.Nomad = conf.RuntimeNomad, nc
	for _, o := range options {
		o(&cfg)
	}
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jobAllocs are the allocations of a project's job Nomad wants running.
func jobAllocs(t *testing.T, c *nomadtest.Cluster, id string) []*api.AllocationListStub {
	t.Helper()
	all, _, err := c.Client().Jobs().Allocations("mlpanel-project-"+id, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []*api.AllocationListStub
	for _, a := range all {
		if a.DesiredStatus == api.AllocDesiredStatusRun && a.ClientStatus == api.AllocClientStatusRunning {
			out = append(out, a)
		}
	}
	return out
}

// logRun logs a run with the stock MLflow client through the gateway
// URL of the project and returns its id.
func logRun(t *testing.T, base, name, experiment string) string {
	t.Helper()
	out := python(t, `import mlflow
mlflow.set_experiment("`+experiment+`")
with mlflow.start_run() as run:
    mlflow.log_param("alpha", "0.5")
    mlflow.log_metric("loss", 0.25)
print("RUN=" + run.info.run_id)
`, "MLFLOW_TRACKING_URI="+base+"/projects/"+name+"/mlflow", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=2")
	return depLine(t, out, "RUN=")
}

// TestNomadRuntime: with MLPANEL_RUNTIME=nomad, on a real Nomad server
// and two client nodes running real MLflow servers, three projects run as
// Nomad jobs, and a model of one of them is served by a Nomad job too;
// the stock client logs through the gateway; killing the node
// of a project makes Nomad place it on the other node, the panel shows
// starting then running and the same gateway URL keeps working with the
// runs logged before; sleep stops the job and a request wakes it; the
// panel stopping leaves the jobs to Nomad and its next start adopts them
// without a second allocation; terminate and delete remove the job.
func TestNomadRuntime(t *testing.T) {
	c := nomadtest.Start(t, 2)
	nc := c.Client()
	home := t.TempDir()
	s := nomadPanel(t, c, home)
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.Close()
		}
	})

	names := []string{"nomad-a", "nomad-b", "nomad-c"}
	ids := map[string]string{}
	for _, name := range names {
		r := at(t, s.URL, http.MethodPost, "/projects", map[string]string{"name": name})
		expect(t, r, http.StatusCreated)
		var p project
		r.JSON(t, &p)
		ids[name] = p.ID
		expect(t, at(t, s.URL, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	}
	for _, name := range names {
		p := waitSleepy(t, s.URL, ids[name], "running", 3*time.Minute)
		job, _, err := nc.Jobs().Info("mlpanel-project-"+p.ID, nil)
		if err != nil {
			t.Fatalf("project %s runs but Nomad has no job mlpanel-project-%s: %v", name, p.ID, err)
		}
		if job.Meta["mlpanel_project_name"] != name || *job.Type != "service" {
			t.Errorf("job of %s: type %s, meta %v; want a service job naming the project", name, *job.Type, job.Meta)
		}
		allocs := jobAllocs(t, c, p.ID)
		if len(allocs) != 1 {
			t.Fatalf("project %s: %d running allocations, want 1", name, len(allocs))
		}
		if p.Pid != 0 {
			t.Errorf("project %s on Nomad shows pid %d: the panel runs no process for it", name, p.Pid)
		}
		if !strings.HasPrefix(p.InternalURL, "http://127.0.0.1:") || !strings.HasSuffix(p.InternalURL, "/projects/"+p.ID+"/mlflow") {
			t.Errorf("project %s: internalUrl %q, want the allocation's address", name, p.InternalURL)
		}
	}

	// The stock client, through the gateway.
	a := ids["nomad-a"]
	before := logRun(t, s.URL, "nomad-a", "before-the-node-died")

	// Its stats are the allocation's, from the Nomad client. An MLflow
	// server holds tens of megabytes at least.
	if st := waitNomadStats(t, s.URL, "/projects/"+a+"/stats"); st.MeasuredBy != "nomad" || st.RSSBytes < 20<<20 || st.PSSBytes != 0 {
		t.Errorf("stats of a project on Nomad: %+v; want the allocation's RSS measured by Nomad (no PSS)", st)
	}

	// A model of nomad-b, served by a Nomad job too.
	pb := getAt(t, s.URL, ids["nomad-b"])
	pb.MlflowURI = s.URL + "/projects/nomad-b/mlflow"
	version := depLine(t, depTrain(t, pb, "iris-nomad"), "version=")
	r := at(t, s.URL, http.MethodPost, "/deployments", map[string]any{"project_id": pb.ID, "model_id": "iris-nomad", "version": version})
	expect(t, r, http.StatusAccepted)
	var d deployment
	r.JSON(t, &d)
	d = waitDeploymentAt(t, s.URL, d.ID, "running", 3*time.Minute)
	modelJob := "mlpanel-deployment-" + d.ID + "-v" + version
	mj, _, err := nc.Jobs().Info(modelJob, nil)
	if err != nil || mj.Meta["mlpanel_deployment_id"] != d.ID {
		t.Fatalf("deployment %s runs but Nomad has no job %s naming it: %v", d.ID, modelJob, err)
	}
	if d.Pid != 0 || !strings.HasPrefix(d.URL, "http://127.0.0.1:") {
		t.Errorf("deployment on Nomad: pid %d, url %q; want no pid and the allocation's address", d.Pid, d.URL)
	}
	// Its stats too are the allocation's, from the Nomad client.
	if ds := waitNomadStats(t, s.URL, "/deployments/"+d.ID+"/stats"); ds.MeasuredBy != "nomad" || ds.RSSBytes < 20<<20 {
		t.Errorf("stats of a deployment on Nomad: %+v; want the allocation's RSS measured by Nomad", ds)
	}
	predictAt(t, s.URL, d.ID, time.Second)

	// Kill the node that runs nomad-a: Nomad places it on the other one.
	killed := killNodeOf(t, s, c, a)
	// Same URL, same runs: the database lives on the shared data home.
	expect(t, at(t, s.URL, http.MethodGet, "/runs/"+before+"?project_id="+a, nil), http.StatusOK)
	logRun(t, s.URL, "nomad-a", "after-the-node-died")
	for _, name := range names { // whatever else ran there came back too
		waitSleepy(t, s.URL, ids[name], "running", 3*time.Minute)
	}
	// The model server, wherever it ran, answers through the same URL.
	predictAt(t, s.URL, d.ID, 3*time.Minute)
	c.Restart(killed)

	// Sleep stops the job; the next request through the gateway runs it.
	cID := ids["nomad-c"]
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+cID, map[string]string{"idleTimeout": "3s"}), http.StatusOK)
	waitSleepy(t, s.URL, cID, "sleeping", time.Minute)
	job, _, err := nc.Jobs().Info("mlpanel-project-"+cID, nil)
	if err != nil || job.Stop == nil || !*job.Stop {
		t.Fatalf("a sleeping project's job is not stopped (kept for the wake): %v %v", job, err)
	}
	r = at(t, s.URL, http.MethodGet, "/projects/nomad-c/mlflow/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default", nil)
	expect(t, r, http.StatusOK)
	if len(jobAllocs(t, c, cID)) != 1 {
		t.Fatal("the woken project has no running allocation")
	}
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+cID, map[string]string{"idleTimeout": "720h"}), http.StatusOK)
	waitSleepy(t, s.URL, cID, "running", time.Minute)

	// The panel stops: Nomad keeps the servers; the next start adopts them.
	running := map[string]string{}
	restarts := map[string]int{}
	for _, name := range names {
		running[name] = jobAllocs(t, c, ids[name])[0].ID
		restarts[name] = getAt(t, s.URL, ids[name]).RestartCount
	}
	s.Close()
	closed = true
	for _, name := range names {
		if got := jobAllocs(t, c, ids[name]); len(got) != 1 || got[0].ID != running[name] {
			t.Fatalf("the panel's stop touched the job of %s: allocations %v", name, got)
		}
	}
	s = nomadPanel(t, c, home)
	closed = false
	for _, name := range names {
		p := waitSleepy(t, s.URL, ids[name], "running", time.Minute)
		if got := jobAllocs(t, c, ids[name]); len(got) != 1 || got[0].ID != running[name] {
			t.Fatalf("after the panel restarted %s has allocations %v, want the adopted %s alone", name, got, running[name])
		}
		if p.RestartCount != restarts[name] {
			t.Errorf("adopting %s counted a restart: restartCount %d, was %d", name, p.RestartCount, restarts[name])
		}
	}
	logRun(t, s.URL, "nomad-b", "after-the-panel-restarted")
	predictAt(t, s.URL, d.ID, time.Minute)

	// Deleting the deployment purges its job.
	expect(t, at(t, s.URL, http.MethodDelete, "/deployments/"+d.ID, nil), http.StatusOK)
	eventuallyNomad(t, "the deleted deployment's job to be purged", func() bool {
		_, _, err := nc.Jobs().Info(modelJob, nil)
		return err != nil && strings.Contains(err.Error(), "404")
	})
	jobs, _, err := nc.Jobs().List(&api.QueryOptions{Prefix: "mlpanel-project-"})
	if err != nil || len(jobs) != 3 {
		t.Fatalf("Nomad has %d project jobs after the restart, want 3 (%v)", len(jobs), err)
	}

	// Terminate removes the job; delete leaves nothing behind.
	b := ids["nomad-b"]
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+b+"/terminate", nil), http.StatusOK)
	waitSleepy(t, s.URL, b, "terminated", time.Minute)
	eventuallyNomad(t, "the terminated project's job to be purged", func() bool {
		_, _, err := nc.Jobs().Info("mlpanel-project-"+b, nil)
		return err != nil && strings.Contains(err.Error(), "404")
	})
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+a+"/terminate", nil), http.StatusOK)
	waitSleepy(t, s.URL, a, "terminated", time.Minute)
	expect(t, at(t, s.URL, http.MethodDelete, "/projects/"+a, nil), http.StatusOK)
	eventuallyNomad(t, "the deleted project's job to be purged", func() bool {
		_, _, err := nc.Jobs().Info("mlpanel-project-"+a, nil)
		return err != nil && strings.Contains(err.Error(), "404")
	})
	assertSpec(t, s)
}

// killNodeOf kills the Nomad node that runs project id's job, the way a
// machine is lost, and waits for what a user sees: the project starting,
// then running in one allocation on another node at a new internalUrl,
// with the events saying so. It returns the killed node's name.
func killNodeOf(t *testing.T, s *stack.Stack, c *nomadtest.Cluster, id string) string {
	t.Helper()
	seen := projectEvents(t, s.NC, id)
	allocs := jobAllocs(t, c, id)
	if len(allocs) != 1 {
		t.Fatalf("project %s runs in %d allocations before its node dies, want 1", id, len(allocs))
	}
	first := allocs[0]
	oldURL := getAt(t, s.URL, id).InternalURL
	c.Kill(first.NodeName)
	waitSleepy(t, s.URL, id, "starting", 2*time.Minute)
	p := waitSleepy(t, s.URL, id, "running", 3*time.Minute)
	now := jobAllocs(t, c, id)
	if len(now) != 1 || now[0].NodeName == first.NodeName {
		t.Fatalf("after node %s died project %s runs on %v, want one allocation on the other node", first.NodeName, id, nodeNames(now))
	}
	if p.InternalURL == oldURL {
		t.Errorf("project %s: internalUrl stayed %s after the move", id, oldURL)
	}
	ev := seen()
	if i := slices.Index(ev, "starting"); i < 0 || !slices.Contains(ev[i:], "running") {
		t.Errorf("events of project %s after the node died: %v, want starting then running", id, ev)
	}
	return first.NodeName
}

func waitDeploymentAt(t *testing.T, base, id, status string, timeout time.Duration) deployment {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var d deployment
	for {
		r := at(t, base, http.MethodGet, "/deployments/"+id, nil)
		expect(t, r, http.StatusOK)
		d = deployment{}
		r.JSON(t, &d)
		if d.Status == status {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s is %s after %s, want %s (error %q)", id, d.Status, timeout, status, d.Error)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// predictAt posts the iris rows to the deployment through the gateway
// until it answers three predictions, for at most within.
func predictAt(t *testing.T, base, id string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := at(t, base, http.MethodPost, "/deployments/"+id+"/predict", map[string]any{"data": irisRows})
		var out struct {
			Predictions []any `json:"predictions"`
		}
		if r.Status == http.StatusOK {
			r.JSON(t, &out)
			if len(out.Predictions) == 3 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("predict through the gateway: %d %s", r.Status, r.Body)
		}
		time.Sleep(time.Second)
	}
}

func getAt(t *testing.T, base, id string) project {
	t.Helper()
	var p project
	r := at(t, base, http.MethodGet, "/projects/"+id, nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &p)
	return p
}

func nodeNames(allocs []*api.AllocationListStub) []string {
	var out []string
	for _, a := range allocs {
		out = append(out, a.NodeName)
	}
	return out
}

func eventuallyNomad(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// nomadStats is the part of a project's or deployment's stats that the Nomad
// runtime fills.
type nomadStats struct {
	RSSBytes   int64  `json:"rssBytes"`
	PSSBytes   int64  `json:"pssBytes"`
	MeasuredBy string `json:"measuredBy"`
}

// waitNomadStats reads stats until they hold a server's worth of memory, or
// for 30 s. Nomad's executor finds a task's child processes by scanning
// the process tree every 5 s (pidScanInterval), so the samples of the
// first seconds can count only the launcher (CI saw 7.7 MB) and not the
// Python server under it.
func waitNomadStats(t *testing.T, base, path string) nomadStats {
	t.Helper()
	var st nomadStats
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := at(t, base, http.MethodGet, path, nil)
		expect(t, r, http.StatusOK)
		r.JSON(t, &st)
		if st.MeasuredBy == "nomad" && st.RSSBytes >= 20<<20 || time.Now().After(deadline) {
			return st
		}
		time.Sleep(time.Second)
	}
}
