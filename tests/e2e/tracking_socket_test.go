package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
)

// TestTrackingServerOnlyThroughGateway: with auth on and no public URL, a
// project's tracking server listens on no TCP port at all, only on a Unix
// socket in a 0700 folder; mlflowUri is the gateway's proxy, where the
// stock client works with a token and a viewer stays a viewer; and a
// model server still fetches its model from the project (read-only relay).
func TestTrackingServerOnlyThroughGateway(t *testing.T) {
	cfg := panelCfg
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.Ports = proc.Range{Lo: 15150, Hi: 15159}
	cfg.Projects.StopOnExit = true
	cfg.Projects.PublicURL = ""
	cfg.Gateway.Addr = "127.0.0.1:0"
	cfg.Gateway.Auth = true
	cfg.Gateway.AdminToken = "mlp_admin-token-for-socket-tests"
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); assertSpec(t, s) })
	tp := &teamPanel{Stack: s, admin: cfg.Gateway.AdminToken}
	carol := tp.newUser(t, "carol", false)
	alice := tp.newUser(t, "alice", false)

	type sockProject struct {
		project
		InternalURL string `json:"internalUrl"`
	}
	r := tp.as(t, carol, "POST", "/projects", map[string]string{"name": "sockproj"})
	expect(t, r, 201)
	var p sockProject
	r.JSON(t, &p)
	if want := s.URL + "/projects/sockproj/mlflow"; p.MlflowURI != want {
		t.Fatalf("with auth on and no MLPANEL_PUBLIC_URL, mlflowUri is %q, want the gateway's proxy %q", p.MlflowURI, want)
	}
	socket, ok := sockhttp.Socket(p.InternalURL)
	if !ok {
		t.Fatalf("internalUrl %q is not a Unix socket address", p.InternalURL)
	}
	expect(t, tp.as(t, carol, "PUT", "/projects/sockproj/members/alice", map[string]string{"role": "viewer"}), 200)
	expect(t, tp.as(t, carol, "PUT", "/projects/sockproj/run", nil), 200)
	deadline := time.Now().Add(3 * time.Minute)
	for tp.projectStatus(t, "sockproj") != "running" {
		if time.Now().After(deadline) {
			t.Fatal("sockproj did not start")
		}
		time.Sleep(300 * time.Millisecond)
	}
	r = tp.as(t, tp.admin, "GET", "/projects/sockproj", nil)
	r.JSON(t, &p)
	// The gateway's project cache may hold "starting" for a few seconds.
	for tp.as(t, carol, "GET", "/projects/sockproj/mlflow/health", nil).Status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("sockproj's server does not answer through the gateway")
		}
		time.Sleep(300 * time.Millisecond)
	}

	// Only the panel's OS user can open the socket; nothing listens on TCP.
	st, err := os.Stat(filepath.Dir(socket))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("socket folder %s: %v, mode %v; want 0700", filepath.Dir(socket), err, st.Mode().Perm())
	}
	if st, err := os.Stat(socket); err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v", socket, err)
	}
	if p.Pid == 0 {
		t.Fatalf("running project without a pid: %+v", p)
	}
	if ls := tcpListeners(t, p.Pid); len(ls) > 0 {
		t.Fatalf("the tracking server's processes listen on TCP %v; want only its Unix socket", ls)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)), time.Second); err == nil {
		conn.Close()
		t.Fatalf("something answers on the project's old port %d", p.Port)
	}

	// The stock client through mlflowUri: the owner writes, a viewer reads
	// and cannot write.
	logRun := `import mlflow
mlflow.set_experiment("sock-e2e")
with mlflow.start_run() as r:
    mlflow.log_metric("m", 1.0)
print("RUN=" + r.info.run_id)`
	runID := depLine(t, python(t, logRun, "MLFLOW_TRACKING_URI="+p.MlflowURI, "MLFLOW_TRACKING_TOKEN="+carol), "RUN=")
	viewer := `import mlflow
runs = mlflow.search_runs(experiment_names=["sock-e2e"], output_format="list")
print("RUNS=" + ",".join(r.info.run_id for r in runs))
try:
    mlflow.create_experiment("from-a-viewer")
    print("WRITE=allowed")
except Exception as e:
    print("WRITE=refused")`
	out := python(t, viewer, "MLFLOW_TRACKING_URI="+p.MlflowURI, "MLFLOW_TRACKING_TOKEN="+alice)
	if depLine(t, out, "RUNS=") != runID || depLine(t, out, "WRITE=") != "refused" {
		t.Fatalf("a viewer through mlflowUri: %s; want run %s listed and the write refused", out, runID)
	}

	// A filter MLflow would chew on for minutes is refused up front, with
	// the limits, by the REST API and by the proxy's searches alike.
	heavy := strings.TrimSuffix(strings.Repeat("metrics.m > 0 AND ", 1000), " AND ")
	r = tp.as(t, alice, "GET", "/runs?project_id=sockproj&filter="+url.QueryEscape(heavy), nil)
	if r.Status != 400 || !strings.Contains(r.Message(), "at most 50 clauses") {
		t.Fatalf("GET /runs with 1000 clauses: %d %s; want 400 stating the limit", r.Status, r.Body)
	}
	r = tp.as(t, alice, "POST", "/projects/sockproj/mlflow/api/2.0/mlflow/runs/search", map[string]any{"experiment_ids": []string{"0"}, "filter": heavy})
	if r.Status != 400 || !strings.Contains(r.Message(), "1000 clauses") {
		t.Fatalf("runs/search through the proxy with 1000 clauses: %d %s; want 400 stating the limit", r.Status, r.Body)
	}

	// A model server fetches its model through the read-only relay.
	train := fmt.Sprintf(`import runpy, sys
sys.argv = ["train.py", "--experiment", "sock-e2e", "--model-name", "iris-sock", "--epochs", "3"]
runpy.run_path(%q, run_name="__main__")`, filepath.Join(repoRoot, "examples", "train.py"))
	python(t, train, "MLFLOW_TRACKING_URI="+p.MlflowURI, "MLFLOW_TRACKING_TOKEN="+carol)
	r = tp.as(t, carol, "POST", "/deployments", map[string]any{"project_id": p.ID, "model_id": "iris-sock", "type": "local"})
	expect(t, r, 202)
	var d deployment
	r.JSON(t, &d)
	t.Cleanup(func() { tp.as(t, tp.admin, "DELETE", "/deployments/"+d.ID, nil) })
	deadline = time.Now().Add(4 * time.Minute)
	for d.Status != "running" {
		if time.Now().After(deadline) || d.Status == "failed" {
			t.Fatalf("deployment of a socket project: %+v", d)
		}
		time.Sleep(500 * time.Millisecond)
		tp.as(t, carol, "GET", "/deployments/"+d.ID, nil).JSON(t, &d)
	}
	r = tp.as(t, carol, "POST", "/deployments/"+d.ID+"/predict", map[string]any{"data": irisRows})
	expect(t, r, 200)
	if !strings.Contains(string(r.Body), "predictions") {
		t.Fatalf("predict: %s", r.Body)
	}
	// The listener check sees TCP listeners where there are some.
	if ls := tcpListeners(t, d.Pid); len(ls) == 0 {
		t.Fatalf("no TCP listener found for the model server (pid %d) on port %d: the check is blind", d.Pid, d.Port)
	}
}

// tcpListeners lists the TCP ports that processes of the process group
// pgid listen on, from /proc.
func tcpListeners(t *testing.T, pgid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 3 || fields[2] != strconv.Itoa(pgid) {
			continue
		}
		fds, _ := filepath.Glob(filepath.Join(dir, "fd", "*"))
		for _, fd := range fds {
			if link, err := os.Readlink(fd); err == nil && strings.HasPrefix(link, "socket:[") {
				inodes[strings.Trim(strings.TrimPrefix(link, "socket:"), "[]")] = true
			}
		}
	}
	var found []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			c := strings.Fields(sc.Text())
			if len(c) > 9 && c[3] == "0A" && inodes[c[9]] { // 0A: LISTEN
				found = append(found, c[1])
			}
		}
		f.Close()
	}
	return found
}
