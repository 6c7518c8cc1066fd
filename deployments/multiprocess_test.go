package deployments

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestServicesAsSeparateProcesses runs the team-server shape without
// Docker: nats-server and FerretDB as their own processes, each service
// built from its own main and started as its own process, wired only by
// MLPANEL_NATS_URL and MLPANEL_MONGO_URI. It then drives the gateway over
// HTTP with real MLflow servers from the repository's .venv.
func TestServicesAsSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds six binaries and runs real MLflow servers")
	}
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, ".venv", "bin", "mlflow")); err != nil {
		t.Fatalf("no .venv/bin/mlflow (%v): run `make venv`, the projects service runs real MLflow servers", err)
	}
	c := newCluster(t, root, buildBinaries(t, root))
	c.startInfra()
	c.startService("projects", "projects")
	if deployer := c.spawn("deployer", "deployer"); !c.answers(deployer, "deployer", 60*time.Second) {
		t.Logf("the deployer does not answer $SRV.PING; deploy steps will skip:\n%s", deployer.tail(10))
	}
	c.startService("gateway", "gateway")

	var project map[string]any
	t.Run("projects", func(t *testing.T) { project = projectLifecycle(c.in(t)) })
	if project == nil {
		t.Fatal("no running project: the remaining steps need one")
	}
	id := fmt.Sprint(project["id"])
	if !t.Run("tracking", func(t *testing.T) { trackingQueueGroup(c.in(t), id) }) {
		return
	}
	t.Run("train-deploy-predict", func(t *testing.T) { trainDeployPredict(c.in(t), project) })
}

// projectLifecycle creates a project, runs it, and checks that its
// tracking server, started by the projects process, answers.
func projectLifecycle(c *cluster) map[string]any {
	t := c.t
	// Auth is on, as on a team server: no token, no answer.
	resp, err := http.Get(c.url("/projects"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /projects without a token: status %d, want 401 (MLPANEL_AUTH=true)", resp.StatusCode)
	}
	name := fmt.Sprintf("mp-%d", time.Now().UnixNano()%1e6)
	r := c.must(http.MethodPost, "/projects", map[string]string{"name": name, "description": "multi-process test"}, http.StatusCreated)
	var p map[string]any
	r.decode(t, &p)
	id := fmt.Sprint(p["id"])
	c.must(http.MethodPut, "/projects/"+id+"/run", nil, http.StatusOK)
	p = c.waitStatus("/projects/"+id, "running", 3*time.Minute)
	if pid, ok := p["pid"].(float64); ok && pid > 0 {
		c.adopt(int(pid), "the tracking server of project "+id)
	}
	uri, _ := p["mlflowUri"].(string)
	if uri == "" {
		t.Fatalf("running project has no mlflowUri: %v", p)
	}
	// With auth on, mlflowUri is the gateway's proxy: the tracking server
	// answers through it, with a token, and not without one.
	if !strings.HasPrefix(uri, c.url("/projects/")) {
		t.Fatalf("mlflowUri %s is not the gateway's proxy %s", uri, c.url("/projects/<name>/mlflow"))
	}
	health := strings.TrimPrefix(strings.TrimRight(uri, "/"), c.url("")) + "/health"
	c.must(http.MethodGet, health, nil, http.StatusOK)
	if resp, err = http.Get(c.url(health)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%s without a token: status %d, want 401", health, resp.StatusCode)
	}
	// The list goes through the gateway and NATS to the projects process.
	var list []map[string]any
	c.must(http.MethodGet, "/projects", nil, http.StatusOK).decode(t, &list)
	found := false
	for _, q := range list {
		found = found || fmt.Sprint(q["id"]) == id
	}
	if !found {
		t.Fatalf("GET /projects does not list %s", id)
	}
	return p
}

// trackingQueueGroup starts two tracking processes and checks that they
// share the load, and that stopping or killing one under load loses no
// request that the other could serve.
func trackingQueueGroup(c *cluster, projectID string) {
	t := c.t
	one := c.spawn("tracking-1", "tracking")
	if !c.answers(one, "tracking", 20*time.Second) {
		t.Fatalf("the tracking service does not register on NATS:\n%s", one.tail(10))
	}
	two := c.startService("tracking", "tracking-2")
	path := "/experiments?project_id=" + projectID

	// Each request goes to one member of the queue group at random: with
	// 40 requests, an idle instance would mean no load sharing.
	before := c.requestsByInstance("tracking")
	for range 40 {
		c.must(http.MethodGet, path, nil, http.StatusOK)
	}
	after := c.requestsByInstance("tracking")
	if len(after) != 2 {
		t.Fatalf("$SRV.STATS.tracking: %d instances answered, want 2: %v", len(after), after)
	}
	for id, n := range after {
		if n-before[id] == 0 {
			t.Errorf("tracking instance %s served none of 40 requests: the instances do not share the load (%v)", id, after)
		}
	}
	t.Logf("requests per tracking instance: %v", after)

	// A graceful stop (SIGTERM: what docker stop and a rolling upgrade do)
	// should drain: in-flight requests finish, new ones go to the other
	// instance.
	lost := c.underLoad(path, func() { one.stop(syscall.SIGTERM, 30*time.Second) })
	failLost(t, "stopping one tracking instance (SIGTERM)", lost)

	// A crash (SIGKILL): the NATS server drops the dead member at once, so
	// new requests reach the survivor; a request already delivered to the
	// dead member gets no reply, which events.Call cannot tell from a slow
	// one.
	c.startService("tracking", "tracking-3")
	lost = c.underLoad(path, func() { two.stop(syscall.SIGKILL, 5*time.Second) })
	failLost(t, "killing one tracking instance (SIGKILL)", lost)

	// The survivor serves alone.
	c.must(http.MethodGet, path, nil, http.StatusOK)
	if n := len(c.instances("tracking", "PING")); n != 1 {
		t.Errorf("%d tracking instances answer $SRV.PING after stopping two of three, want 1", n)
	}
}

// failLost fails the test for every request lost while an instance
// stopped: the other instance could have served each of them (the gateway
// sends reads again when an attempt gets no reply, and a stopping service
// drains before it exits).
func failLost(t *testing.T, what string, lost []string) {
	t.Helper()
	if len(lost) > 0 {
		t.Errorf("%s: %d requests failed that the other instance could serve:\n%s", what, len(lost), strings.Join(lost, "\n"))
	}
}

// answers reports whether an instance of service answers $SRV.PING within
// timeout; false also when p exits.
func (c *cluster) answers(p *process, service string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && !p.exited() {
		if len(c.instances(service, "PING")) > 0 {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// underLoad fires GET path from 4 workers, runs disrupt after 1.5 s, keeps
// firing for 5 s more, and returns every failed request.
func (c *cluster) underLoad(path string, disrupt func()) []string {
	const workers = 4
	var (
		mu      sync.Mutex
		failed  []string
		total   int
		slowest time.Duration // a retried request shows here
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				began := time.Now()
				r, err := c.do(ctx, http.MethodGet, path, nil)
				cancel()
				took := time.Since(began)
				mu.Lock()
				total++
				slowest = max(slowest, took)
				switch {
				case err != nil:
					failed = append(failed, fmt.Sprintf("worker %d request %d: %v after %s", w, i, err, time.Since(began).Round(time.Millisecond)))
				case r.Status != http.StatusOK:
					failed = append(failed, fmt.Sprintf("worker %d request %d: status %d after %s: %s", w, i, r.Status, time.Since(began).Round(time.Millisecond), r.Body))
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	disrupt()
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()
	sort.Strings(failed)
	c.t.Logf("under load: %d requests, %d failed, slowest %s", total, len(failed), slowest.Round(time.Millisecond))
	return failed
}

// irisRows are three flowers, one of each species.
var irisRows = [][]float64{{5.1, 3.5, 1.4, 0.2}, {6.2, 2.9, 4.3, 1.3}, {7.7, 3.0, 6.1, 2.3}}

// trainDeployPredict trains the example against the project's tracking
// server, finds the run through the gateway (tracking process), deploys the
// registered model (deployer process) and predicts through the gateway.
func trainDeployPredict(c *cluster, project map[string]any) {
	t := c.t
	id := fmt.Sprint(project["id"])
	uri := fmt.Sprint(project["mlflowUri"])
	if len(c.instances("deployer", "PING")) == 0 {
		t.Fatal("no deployer answers $SRV.PING")
	}
	const model = "iris-multiprocess"
	out := c.python([]string{"MLFLOW_TRACKING_URI=" + uri, "MLFLOW_TRACKING_TOKEN=" + adminToken},
		filepath.Join(c.root, "examples", "train.py"), "--experiment", "multiprocess", "--model-name", model, "--epochs", "3")
	runID := valueAfter(out, "run_id=")
	version := valueAfter(out, "version=")
	if runID == "" || version == "" {
		t.Fatalf("examples/train.py printed no run_id= and version=:\n%s", out)
	}

	// The run, listed by the tracking process through the gateway.
	runs := c.must(http.MethodGet, "/runs?project_id="+id, nil, http.StatusOK)
	if !strings.Contains(string(runs.Body), runID) {
		t.Fatalf("GET /runs?project_id=%s does not list run %s: %s", id, runID, runs.Body)
	}

	// The deployment, served by a model server the deployer process starts.
	var d map[string]any
	c.must(http.MethodPost, "/deployments", map[string]any{"project_id": id, "model_id": model, "type": "local"}, http.StatusAccepted).decode(t, &d)
	depID := fmt.Sprint(d["id"])
	if fmt.Sprint(d["version"]) != version {
		t.Errorf("deployment of %s has version %v, want the one just registered, %s", model, d["version"], version)
	}
	d = c.waitStatus("/deployments/"+depID, "running", 4*time.Minute)
	pid, _ := d["pid"].(float64)
	if pid > 0 {
		c.adopt(int(pid), "the model server of deployment "+depID)
	}
	cols, _ := d["input_columns"].([]any)
	if len(cols) != 4 {
		t.Fatalf("deployment input_columns %v: want the 4 iris measurements", d["input_columns"])
	}
	var pred struct {
		Predictions []any `json:"predictions"`
	}
	c.must(http.MethodPost, "/deployments/"+depID+"/predict",
		map[string]any{"dataframe_split": map[string]any{"columns": cols, "data": irisRows}}, http.StatusOK).decode(t, &pred)
	if len(pred.Predictions) != len(irisRows) {
		t.Fatalf("predictions %v: want one per row of %v", pred.Predictions, irisRows)
	}
	t.Logf("run %s, model %s v%s, predictions %v", runID, model, version, pred.Predictions)

	// Delete stops the model server; the deployer does that in the
	// background, so give it the time a stop may take.
	c.must(http.MethodDelete, "/deployments/"+depID, nil, http.StatusOK)
	c.must(http.MethodGet, "/deployments/"+depID, nil, http.StatusNotFound)
	if !waitGroupGone(int(pid), time.Minute) {
		t.Errorf("the model server of deleted deployment %s (process group %d) still runs after a minute", depID, int(pid))
	}
}

// valueAfter returns the word after prefix on the last line that has it.
func valueAfter(out, prefix string) string {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if j := strings.Index(lines[i], prefix); j >= 0 {
			v, _, _ := strings.Cut(lines[i][j+len(prefix):], " ")
			return strings.TrimSpace(v)
		}
	}
	return ""
}
