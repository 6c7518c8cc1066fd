package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

const logRunScript = `
import os, tempfile, mlflow
mlflow.set_experiment("e2e-projects")
with mlflow.start_run() as run:
    mlflow.log_param("alpha", "0.5")
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    d = tempfile.mkdtemp()
    path = os.path.join(d, "notes.txt")
    with open(path, "w") as f:
        f.write("hello from mlpanel")
    mlflow.log_artifact(path, artifact_path="docs")
    print("run_id=" + run.info.run_id)
`

// TestProjectLifecycle is the seed's workflow and the supervision promise:
// a real mlflow client logs into a project's server, the server survives
// kill -9, terminate leaves no process behind, and a second run serves the
// same data.
func TestProjectLifecycle(t *testing.T) {
	p := createProject(t, "lifecycle")
	if r := panelCfg.Projects.Ports; p.Status != "terminated" || p.Port < r.Lo || p.Port > r.Hi {
		t.Fatalf("new project %+v: want status terminated and a port in %s", p, r)
	}
	// Auth is off here, and still the client's address is the gateway's
	// proxy, so every use is seen (and may wake the project).
	if want := panel.URL + "/projects/" + p.Name + "/mlflow"; p.MlflowURI != want {
		t.Fatalf("mlflowUri %q, want the gateway's proxy %q", p.MlflowURI, want)
	}

	r := call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil)
	expect(t, r, http.StatusOK)
	var started project
	r.JSON(t, &started)
	if started.Status != "starting" {
		t.Fatalf("run answered status %q, want starting", started.Status)
	}
	r = call(t, http.MethodPut, "/projects/lifecycle/run", nil)
	expect(t, r, http.StatusConflict)
	p = waitProject(t, p.ID, "running", 3*time.Minute)

	expect(t, call(t, http.MethodGet, "/projects/lifecycle/ping", nil), http.StatusOK)
	expect(t, call(t, http.MethodGet, "/projects/lifecycle/healthcheck", nil), http.StatusOK)

	// MLflow's own web UI and its API, through the gateway's proxy.
	ui := call(t, http.MethodGet, "/projects/lifecycle/mlflow/", nil)
	if ui.Status != http.StatusOK || !strings.Contains(strings.ToLower(string(ui.Body)), "<html") {
		t.Fatalf("MLflow UI through the proxy: %d %.200s", ui.Status, ui.Body)
	}
	expect(t, call(t, http.MethodGet, "/projects/lifecycle/mlflow/ajax-api/2.0/mlflow/experiments/search?max_results=5", nil), http.StatusOK)

	out := python(t, logRunScript, "MLFLOW_TRACKING_URI="+p.MlflowURI)
	runID := lastValue(t, out, "run_id=")
	assertRunData(t, p, runID)

	// kill -9 the server: the reconcile loop brings it back with the data.
	oldPid := p.Pid
	if err := syscall.Kill(oldPid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the tracking server %d: %v", oldPid, err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		p = getProject(t, p.ID)
		if p.Status == "running" && p.Pid != oldPid && p.Pid != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not come back after kill -9: %+v", p)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if p.RestartCount < 1 {
		t.Errorf("restartCount %d after a crash, want at least 1", p.RestartCount)
	}
	if groupAlive(oldPid) {
		t.Errorf("processes of the killed server's group %d are still alive", oldPid)
	}
	assertRunData(t, p, runID)

	// terminate: no process left, port free.
	pid := p.Pid
	r = call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &p)
	if p.Status != "terminated" {
		t.Fatalf("terminate answered status %q", p.Status)
	}
	if groupAlive(pid) {
		t.Fatalf("process group %d survived terminate", pid)
	}
	if !proc.PortFree("127.0.0.1", p.Port) {
		t.Fatalf("port %d still taken after terminate", p.Port)
	}
	expect(t, call(t, http.MethodGet, "/projects/lifecycle/healthcheck", nil), http.StatusBadRequest)
	expect(t, call(t, http.MethodGet, "/projects/lifecycle/ping", nil), http.StatusBadRequest)

	// run again: same data.
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	p = waitProject(t, p.ID, "running", 3*time.Minute)
	assertRunData(t, p, runID)

	logs := call(t, http.MethodGet, "/projects/"+p.ID+"/logs?lines=50", nil)
	expect(t, logs, http.StatusOK)
	var lg struct {
		Lines int    `json:"lines"`
		Log   string `json:"log"`
	}
	logs.JSON(t, &lg)
	if lg.Lines == 0 || lg.Lines > 50 || !strings.Contains(lg.Log, "HTTP") {
		t.Errorf("logs: %d lines, want 1..50 lines of the server's access log; got %q", lg.Lines, lg.Log)
	}

	// delete refuses a running project, then moves its files to the trash.
	expect(t, call(t, http.MethodDelete, "/projects/"+p.ID, nil), http.StatusConflict)
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
	expect(t, call(t, http.MethodDelete, "/projects/"+p.ID, nil), http.StatusOK)
	expect(t, call(t, http.MethodGet, "/projects/"+p.ID, nil), http.StatusNotFound)
	trashed, _ := filepath.Glob(filepath.Join(panelCfg.Home, "trash", p.ID+"-lifecycle-*", "mlflow.db"))
	if len(trashed) != 1 {
		t.Fatalf("the deleted project's database is not in the trash: %v", trashed)
	}
}

// TestProjectAdoption restarts the projects service while a server runs:
// the new instance adopts it (same pid, no second copy) and restarts one
// that died while the service was away.
func TestProjectAdoption(t *testing.T) {
	a := runningProject(t, "adopt-live")
	b := runningProject(t, "adopt-dead")

	if err := panel.StopService("projects"); err != nil {
		t.Fatalf("stopping the projects service: %v", err)
	}
	if !groupAlive(a.Pid) || !groupAlive(b.Pid) {
		t.Fatal("stopping the service as a crash would must leave the servers running")
	}
	// b's server dies while nobody supervises it.
	if err := syscall.Kill(-b.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := panel.StartService("projects"); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(3 * time.Minute)
	for {
		na, nb := getProject(t, a.ID), getProject(t, b.ID)
		if na.Pid != a.Pid {
			t.Fatalf("the live server was not adopted: pid %d became %d", a.Pid, na.Pid)
		}
		if nb.Status == "running" && nb.Pid != b.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead server was not restarted: %+v", nb)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if n := countServers(a); n != 1 {
		t.Fatalf("%d tracking server groups of project %s, want exactly 1", n, a.ID)
	}
	for _, p := range []project{a, b} {
		expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
	}
	if groupAlive(a.Pid) {
		t.Fatal("terminating an adopted server left its group alive")
	}
}

func assertRunData(t *testing.T, p project, runID string) {
	t.Helper()
	r := mlflowAPI(t, p, http.MethodGet, "runs/get?run_id="+runID, nil)
	expect(t, r, http.StatusOK)
	var got struct {
		Run struct {
			Data struct {
				Params  []struct{ Key, Value string } `json:"params"`
				Metrics []struct {
					Key   string  `json:"key"`
					Value float64 `json:"value"`
					Step  int     `json:"step"`
				} `json:"metrics"`
			} `json:"data"`
		} `json:"run"`
	}
	r.JSON(t, &got)
	if len(got.Run.Data.Params) != 1 || got.Run.Data.Params[0].Key != "alpha" || got.Run.Data.Params[0].Value != "0.5" {
		t.Fatalf("params %+v, want alpha=0.5", got.Run.Data.Params)
	}
	if len(got.Run.Data.Metrics) != 1 || got.Run.Data.Metrics[0].Step != 2 {
		t.Fatalf("metrics %+v, want loss at step 2", got.Run.Data.Metrics)
	}
	r = mlflowAPI(t, p, http.MethodGet, "metrics/get-history?run_id="+runID+"&metric_key=loss", nil)
	expect(t, r, http.StatusOK)
	var hist struct {
		Metrics []json.RawMessage `json:"metrics"`
	}
	r.JSON(t, &hist)
	if len(hist.Metrics) != 3 {
		t.Fatalf("loss history has %d points, want 3", len(hist.Metrics))
	}
	resp, err := http.Get(p.MlflowURI + "/api/2.0/mlflow-artifacts/artifacts/" + experimentPath(t, p, runID) + "/docs/notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := make([]byte, 100)
	n, _ := resp.Body.Read(body)
	if resp.StatusCode != http.StatusOK || string(body[:n]) != "hello from mlpanel" {
		t.Fatalf("artifact download: %d %q", resp.StatusCode, body[:n])
	}
}

// experimentPath is the run's artifact folder below the served root:
// <experiment_id>/<run_id>/artifacts.
func experimentPath(t *testing.T, p project, runID string) string {
	r := mlflowAPI(t, p, http.MethodGet, "runs/get?run_id="+runID, nil)
	var got struct {
		Run struct {
			Info struct {
				ArtifactURI string `json:"artifact_uri"`
			} `json:"info"`
		} `json:"run"`
	}
	r.JSON(t, &got)
	const prefix = "mlflow-artifacts:/"
	if !strings.HasPrefix(got.Run.Info.ArtifactURI, prefix) {
		t.Fatalf("artifact_uri %q: want served artifacts (%s...)", got.Run.Info.ArtifactURI, prefix)
	}
	return strings.TrimPrefix(got.Run.Info.ArtifactURI, prefix)
}

func lastValue(t *testing.T, out, prefix string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return strings.TrimPrefix(lines[i], prefix)
		}
	}
	t.Fatalf("no %q line in output:\n%s", prefix, out)
	return ""
}

// groupAlive reports whether any non-zombie process of group pgid lives.
func groupAlive(pgid int) bool {
	if pgid <= 0 {
		return false
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			return true
		}
	}
	return false
}

// countServers counts the process groups whose leader is a tracking
// server of the project: a process group leader working in the project's
// folder (forked from the warm MLflow, its command line is the zygote's).
func countServers(p project) int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err != nil || cwd != p.Path {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err != nil || strings.Contains(string(st), ") Z ") {
			continue
		}
		if pg, err := syscall.Getpgid(pid); err == nil && pg == pid {
			n++
		}
	}
	return n
}
