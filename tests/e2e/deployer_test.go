package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// depPredictLimit is the predict body limit the panel runs with here, small
// enough that the 413 test sends little.
const depPredictLimit = 1 << 20

func init() {
	serviceConfigurers = append(serviceConfigurers, func(cfg *stack.Config, home string) {
		cfg.Deployer.Home = home
		cfg.Deployer.Mlflow = filepath.Join(repoRoot, ".venv", "bin", "mlflow")
		cfg.Deployer.Ports = proc.Range{Lo: 15200, Hi: 15219}
		// Two e2e runs at once (developers side by side) would hand out
		// the same tracking ports; E2E_PROJECT_PORTS moves this run's.
		if v := os.Getenv("E2E_PROJECT_PORTS"); v != "" {
			r, err := proc.ParseRange(v)
			if err != nil {
				panic("E2E_PROJECT_PORTS: " + err.Error())
			}
			cfg.Projects.Ports = r
		}
		cfg.Deployer.Workers = 1
		cfg.Deployer.MaxFailures = 5
		// Stopping the deployer stops its model servers, so none outlives
		// the tests, except while the adoption test asks it to leave
		// them running, as a crash would.
		cfg.Deployer.StopOnExit = true
		cfg.Deployer.KeepServersOnExit = depKeepServers.Load
		cfg.Gateway.PredictMaxBytes = depPredictLimit
	})
}

// deployment is the part of a deployment the tests read.
type deployment struct {
	ID           string   `json:"id"`
	ProjectID    string   `json:"project_id"`
	ModelID      string   `json:"model_id"`
	Version      string   `json:"version"`
	Alias        string   `json:"alias"`
	ModelURI     string   `json:"model_uri"`
	Type         string   `json:"type"`
	DesiredState string   `json:"desired_state"`
	Status       string   `json:"status"`
	Stage        string   `json:"stage"`
	Host         string   `json:"host"`
	Port         int      `json:"port"`
	URL          string   `json:"url"`
	InstanceName string   `json:"instance_name"`
	Error        string   `json:"error"`
	RestartCount int      `json:"restart_count"`
	Pid          int      `json:"pid"`
	InputColumns []string `json:"input_columns"`
	CreatedAt    string   `json:"created_at"`
	UpdatedAt    string   `json:"updated_at"`
}

// depKeepServers makes a stopping deployer leave its model servers.
var depKeepServers atomic.Bool

// depFixture is one running project with the example model registered,
// shared by the deployer tests (MLflow servers take long to start).
type depFixture struct {
	project project
	model   string
	version string
}

var (
	depOnce sync.Once
	depFix  *depFixture
	depErr  string
)

const depModel = "iris-e2e"

func depSetup(t testing.TB) *depFixture {
	t.Helper()
	depOnce.Do(func() {
		ok := false
		defer func() {
			if !ok && depErr == "" {
				depErr = "the deployer fixture failed to set up; see the first failing test"
			}
		}()
		p := runningProject(t, "deploy-e2e")
		out := depTrain(t, p, depModel)
		version := depLine(t, out, "version=")
		depFix = &depFixture{project: p, model: depModel, version: version}
		ok = true
	})
	if depFix == nil {
		t.Fatal(depErr)
	}
	return depFix
}

// depTrain runs the example training script against the project and
// returns its output (it registers a new version of model).
func depTrain(t testing.TB, p project, model string) string {
	t.Helper()
	script := fmt.Sprintf(`import runpy, sys
sys.argv = ["train.py", "--experiment", "deploy-e2e", "--model-name", %q, "--epochs", "3"]
runpy.run_path(%q, run_name="__main__")`, model, filepath.Join(repoRoot, "examples", "train.py"))
	return python(t, script, "MLFLOW_TRACKING_URI="+p.MlflowURI)
}

// depLine returns the value after prefix on the output's last line that
// has it (the value ends at a space).
func depLine(t testing.TB, out, prefix string) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if j := strings.Index(lines[i], prefix); j >= 0 {
			v := lines[i][j+len(prefix):]
			if k := strings.IndexByte(v, ' '); k >= 0 {
				v = v[:k]
			}
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q in output:\n%s", prefix, out)
	return ""
}

// createDeployment posts a deployment, expects 202, and deletes it when
// the test ends so no model server outlives the tests.
func createDeployment(t *testing.T, body map[string]any) deployment {
	t.Helper()
	r := call(t, http.MethodPost, "/deployments", body)
	expect(t, r, http.StatusAccepted)
	var d deployment
	r.JSON(t, &d)
	t.Cleanup(func() { deleteDeploymentQuietly(d.ID) })
	return d
}

func deleteDeploymentQuietly(id string) {
	var d deployment
	if resp, err := http.Get(panel.URL + "/deployments/" + id); err == nil {
		_ = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodDelete, panel.URL+"/deployments/"+id, nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	// Wait for the server to stop, so the next test finds the port free.
	deadline := time.Now().Add(time.Minute)
	for groupAlive(d.Pid) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
}

func getDeployment(t *testing.T, id string) deployment {
	t.Helper()
	r := call(t, http.MethodGet, "/deployments/"+id, nil)
	expect(t, r, http.StatusOK)
	var d deployment
	r.JSON(t, &d)
	return d
}

// waitDeployment polls until the deployment has status (failing early on
// an unexpected failure).
func waitDeployment(t *testing.T, id, status string, timeout time.Duration) deployment {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var d deployment
	for time.Now().Before(deadline) {
		d = getDeployment(t, id)
		if d.Status == status {
			return d
		}
		if d.Status == "failed" && status != "failed" {
			t.Fatalf("deployment %s failed while waiting for %s: %s", id, status, d.Error)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("deployment %s is %s after %s, want %s (error %q)", id, d.Status, timeout, status, d.Error)
	return d
}

// depPredictions posts a predict body and decodes {"predictions": ...}.
func depPredictions(t *testing.T, id string, body any, contentType ...string) []any {
	t.Helper()
	r := call(t, http.MethodPost, "/deployments/"+id+"/predict", body, contentType...)
	expect(t, r, http.StatusOK)
	var out struct {
		Predictions []any `json:"predictions"`
	}
	r.JSON(t, &out)
	if len(out.Predictions) == 0 {
		t.Fatalf("no predictions in %s", r.Body)
	}
	return out.Predictions
}

// irisRows are measurements of three irises, one of each species.
var irisRows = [][]float64{{5.1, 3.5, 1.4, 0.2}, {6.2, 2.9, 4.3, 1.3}, {7.7, 3.0, 6.1, 2.3}}

// pythonPredictions loads the registered version in Python and predicts
// irisRows, the reference the gateway's answers must equal.
func pythonPredictions(t *testing.T, p project, model, version string) []any {
	t.Helper()
	rows, _ := json.Marshal(irisRows)
	out := python(t, fmt.Sprintf(`import json, mlflow, pandas as pd
m = mlflow.pyfunc.load_model("models:/%s/%s")
cols = m.metadata.get_input_schema().input_names()
pred = m.predict(pd.DataFrame(%s, columns=cols))
print("PRED=" + json.dumps([p.item() if hasattr(p, "item") else p for p in pred], separators=(",", ":")))`, model, version, rows),
		"MLFLOW_TRACKING_URI="+p.MlflowURI)
	var pred []any
	if err := json.Unmarshal([]byte(depLine(t, out, "PRED=")), &pred); err != nil {
		t.Fatalf("decoding Python predictions: %v\n%s", err, out)
	}
	return pred
}

// TestDeployLocal deploys the example model locally and drives its whole
// life through the gateway: every predict format, stop, run, kill -9 and
// delete.
func TestDeployLocal(t *testing.T) {
	f := depSetup(t)
	p := f.project

	// No version: the latest.
	d := createDeployment(t, map[string]any{"project_id": p.ID, "model_id": f.model, "type": "local"})
	if d.Version != f.version || d.ModelURI != "models:/"+f.model+"/"+f.version || d.Type != "local" || d.DesiredState != "running" {
		t.Fatalf("created %+v: want version %s of %s, local, desired running", d, f.version, f.model)
	}
	if d.Status != "pending" && d.Status != "starting" {
		t.Fatalf("created with status %q, want pending or starting", d.Status)
	}
	if len(d.InputColumns) != 4 {
		t.Fatalf("input_columns %v: want the 4 iris measurements", d.InputColumns)
	}
	d = waitDeployment(t, d.ID, "running", 4*time.Minute)
	if d.Port < 15200 || d.Port > 15219 || d.URL != fmt.Sprintf("http://127.0.0.1:%d", d.Port) || d.Pid == 0 {
		t.Fatalf("running deployment %+v: want a port in 15200-15219, its url and a pid", d)
	}
	expect(t, call(t, http.MethodGet, "/deployments/"+d.ID+"/ping", nil), http.StatusOK)
	// What it costs: its process group, measured from /proc.
	if st := deploymentStats(t, d.ID); st.MeasuredBy != "proc" || st.Processes < 1 || st.PSSBytes < 10<<20 || st.RSSBytes < st.PSSBytes || st.CPUSeconds <= 0 {
		t.Fatalf("stats of a running local model server: %+v; want its process group's PSS, RSS and CPU seconds", st)
	}

	want := pythonPredictions(t, p, f.model, f.version)
	cols := d.InputColumns
	records := make([]map[string]float64, len(irisRows))
	for i, row := range irisRows {
		records[i] = map[string]float64{}
		for j, c := range cols {
			records[i][c] = row[j]
		}
	}
	rowsJSON, _ := json.Marshal(irisRows)
	var csv strings.Builder
	for i, c := range cols {
		if i > 0 {
			csv.WriteString(",")
		}
		csv.WriteString(`"` + c + `"`)
	}
	csv.WriteString("\n")
	for _, row := range irisRows {
		csv.WriteString(strings.Trim(strings.Join(strings.Fields(fmt.Sprint(row)), ","), "[]") + "\n")
	}
	for name, tc := range map[string]struct {
		body any
		ct   []string
	}{
		"dataframe_split":   {map[string]any{"dataframe_split": map[string]any{"columns": cols, "data": irisRows}}, nil},
		"dataframe_records": {map[string]any{"dataframe_records": records}, nil},
		"original data":     {map[string]any{"data": irisRows}, nil},
		"original form":     {"data=" + string(rowsJSON), []string{"application/x-www-form-urlencoded"}},
		"csv":               {csv.String(), []string{"text/csv"}},
	} {
		got := depPredictions(t, d.ID, tc.body, tc.ct...)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: predictions %v, want %v (the model in Python)", name, got, want)
		}
	}

	// MLflow's reason for a malformed payload comes back as a 400.
	r := call(t, http.MethodPost, "/deployments/"+d.ID+"/predict", map[string]any{"dataframe_split": map[string]any{"columns": []string{"nope"}, "data": [][]float64{{1}}}})
	expect(t, r, http.StatusBadRequest)
	if !strings.Contains(r.Message(), "missing inputs") {
		t.Errorf("malformed predict answered %q, want MLflow's reason", r.Message())
	}
	r = call(t, http.MethodPost, "/deployments/"+d.ID+"/predict", `{"data": "not rows"}`)
	expect(t, r, http.StatusBadRequest)
	r = call(t, http.MethodPost, "/deployments/"+d.ID+"/predict", `{"inputs": [[1,2`)
	expect(t, r, http.StatusBadRequest)

	// Over the limit: 413, declared or streamed.
	big := `{"inputs": [` + strings.Repeat("[1.0, 2.0, 3.0, 4.0],", depPredictLimit/20) + `[1.0, 2.0, 3.0, 4.0]]}`
	r = call(t, http.MethodPost, "/deployments/"+d.ID+"/predict", big)
	expect(t, r, http.StatusRequestEntityTooLarge)

	// The list shows it, filtered by project and status, with a true total.
	r = call(t, http.MethodGet, "/deployments?project_id="+p.ID+"&status=running", nil)
	expect(t, r, http.StatusOK)
	var list []deployment
	r.JSON(t, &list)
	if len(list) != 1 || list[0].ID != d.ID || r.Header.Get("X-Total-Count") != "1" {
		t.Fatalf("list %+v (X-Total-Count %s): want just %s", list, r.Header.Get("X-Total-Count"), d.ID)
	}

	logs := call(t, http.MethodGet, "/deployments/"+d.ID+"/logs?lines=50", nil)
	expect(t, logs, http.StatusOK)
	if !strings.Contains(string(logs.Body), "models serve") {
		t.Errorf("logs do not show the server's start: %s", logs.Body)
	}

	// kill -9 the model server: the deployer restarts it.
	old := d
	if err := syscall.Kill(old.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing model server %d: %v", old.Pid, err)
	}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		d = getDeployment(t, d.ID)
		if d.Status == "running" && d.Pid != 0 && d.Pid != old.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the model server did not come back after kill -9: %+v", d)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if d.RestartCount < 1 {
		t.Errorf("restart_count %d after a crash, want >= 1", d.RestartCount)
	}
	if got := depPredictions(t, d.ID, map[string]any{"data": irisRows}); !reflect.DeepEqual(got, want) {
		t.Errorf("after the restart: predictions %v, want %v", got, want)
	}

	// Stop: no process left, predict is a 409, ping a 400; run again.
	r = call(t, http.MethodPut, "/deployments/"+d.ID+"/stop", nil)
	expect(t, r, http.StatusOK)
	stoppedPid := d.Pid
	d = waitDeployment(t, d.ID, "stopped", time.Minute)
	if groupAlive(stoppedPid) {
		t.Fatalf("model server group %d survived the stop", stoppedPid)
	}
	r = call(t, http.MethodPost, "/deployments/"+d.ID+"/predict", map[string]any{"data": irisRows})
	expect(t, r, http.StatusConflict)
	expect(t, call(t, http.MethodGet, "/deployments/"+d.ID+"/ping", nil), http.StatusBadRequest)
	if st := deploymentStats(t, d.ID); st.MeasuredBy != "none" || st.RSSBytes != 0 || st.Processes != 0 {
		t.Fatalf("stats of a stopped deployment: %+v; want nothing measured", st)
	}

	expect(t, call(t, http.MethodPut, "/deployments/"+d.ID+"/run", nil), http.StatusOK)
	expect(t, call(t, http.MethodPut, "/deployments/"+d.ID+"/run", nil), http.StatusConflict)
	d = waitDeployment(t, d.ID, "running", 4*time.Minute)
	if got := depPredictions(t, d.ID, map[string]any{"data": irisRows}); !reflect.DeepEqual(got, want) {
		t.Errorf("after run: predictions %v, want %v", got, want)
	}

	// Delete: hidden, 404 everywhere, never runs again, no process left.
	lastPid := d.Pid
	expect(t, call(t, http.MethodDelete, "/deployments/"+d.ID, nil), http.StatusOK)
	expect(t, call(t, http.MethodGet, "/deployments/"+d.ID, nil), http.StatusNotFound)
	expect(t, call(t, http.MethodPut, "/deployments/"+d.ID+"/run", nil), http.StatusNotFound)
	expect(t, call(t, http.MethodPost, "/deployments/"+d.ID+"/predict", map[string]any{"data": irisRows}), http.StatusNotFound)
	r = call(t, http.MethodGet, "/deployments?project_id="+p.ID, nil)
	r.JSON(t, &list)
	for _, x := range list {
		if x.ID == d.ID {
			t.Fatalf("deleted deployment %s still listed", d.ID)
		}
	}
	deadline = time.Now().Add(time.Minute)
	for groupAlive(lastPid) {
		if time.Now().After(deadline) {
			t.Fatalf("model server group %d survived the delete", lastPid)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a few reconcile passes: it must stay down
	if groupAlive(lastPid) || !proc.PortFree("127.0.0.1", d.Port) {
		t.Fatalf("a deleted deployment's server came back on port %d", d.Port)
	}
}

// TestDeployAdoption: a restarted deployer adopts the model servers that
// kept running, instead of starting second copies.
func TestDeployAdoption(t *testing.T) {
	f := depSetup(t)
	d := createDeployment(t, map[string]any{"project_id": f.project.ID, "model_id": f.model, "version": f.version, "type": "local"})
	d = waitDeployment(t, d.ID, "running", 4*time.Minute)
	want := depPredictions(t, d.ID, map[string]any{"data": irisRows})

	depKeepServers.Store(true)
	err := panel.StopService("deployer")
	depKeepServers.Store(false)
	if err != nil {
		t.Fatalf("stopping the deployer: %v", err)
	}
	if !groupAlive(d.Pid) {
		t.Fatalf("model server %d died with the deployer", d.Pid)
	}
	// The data plane does not need the deployer: predict goes on.
	if got := depPredictions(t, d.ID, map[string]any{"data": irisRows}); !reflect.DeepEqual(got, want) {
		t.Errorf("predictions without the deployer %v, want %v", got, want)
	}
	if err := panel.StartService("deployer"); err != nil {
		t.Fatalf("starting the deployer: %v", err)
	}
	time.Sleep(3 * time.Second) // a few reconcile passes
	again := getDeployment(t, d.ID)
	if again.Status != "running" || again.Pid != d.Pid || again.RestartCount != d.RestartCount {
		t.Fatalf("after the deployer's restart %+v, want the same server %d still running", again, d.Pid)
	}
	expect(t, call(t, http.MethodGet, "/deployments/"+d.ID+"/ping", nil), http.StatusOK)
	if got := depPredictions(t, d.ID, map[string]any{"data": irisRows}); !reflect.DeepEqual(got, want) {
		t.Errorf("predictions after adoption %v, want %v", got, want)
	}
	// The adopted server is supervised: stop ends it.
	expect(t, call(t, http.MethodPut, "/deployments/"+d.ID+"/stop", nil), http.StatusOK)
	waitDeployment(t, d.ID, "stopped", time.Minute)
	if groupAlive(d.Pid) {
		t.Fatalf("adopted server %d survived the stop", d.Pid)
	}
}

// TestDeployBadInput: every known mistake has its status and a message
// that says what to do; none is a 500.
func TestDeployBadInput(t *testing.T) {
	f := depSetup(t)
	p := f.project
	idle := createProject(t, "deploy-idle")
	for name, tc := range map[string]struct {
		body   any
		ct     []string
		status int
		want   string
	}{
		"unknown project":     {map[string]any{"project_id": "999999", "model_id": f.model}, nil, 404, "not found"},
		"unknown model":       {map[string]any{"project_id": p.ID, "model_id": "no-such-model"}, nil, 404, "no-such-model"},
		"unknown version":     {map[string]any{"project_id": p.ID, "model_id": f.model, "version": "9999"}, nil, 404, "no version 9999"},
		"unknown alias":       {map[string]any{"project_id": p.ID, "model_id": f.model, "version": "champion-x"}, nil, 404, "champion-x"},
		"invalid version":     {map[string]any{"project_id": p.ID, "model_id": f.model, "version": "1/../2"}, nil, 400, "invalid version"},
		"invalid type":        {map[string]any{"project_id": p.ID, "model_id": f.model, "type": "k8s"}, nil, 400, "invalid type"},
		"no project":          {map[string]any{"model_id": f.model}, nil, 400, "project_id"},
		"no model":            {map[string]any{"project_id": p.ID}, nil, 400, "model_id"},
		"project not running": {map[string]any{"project_id": idle.ID, "model_id": f.model}, nil, 409, "/run"},
		"malformed body":      {`{"project_id": `, nil, 400, "JSON"},
		"numeric ids in form": {"project_id=" + p.ID + "&model_id=no-such-model&version=1", []string{"application/x-www-form-urlencoded"}, 404, "no-such-model"},
	} {
		t.Run(name, func(t *testing.T) {
			r := call(t, http.MethodPost, "/deployments", tc.body, tc.ct...)
			expect(t, r, tc.status)
			if !strings.Contains(r.Message(), tc.want) {
				t.Fatalf("message %q, want it to mention %q", r.Message(), tc.want)
			}
		})
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/deployments/999999"},
		{http.MethodPut, "/deployments/999999/run"},
		{http.MethodPut, "/deployments/999999/stop"},
		{http.MethodDelete, "/deployments/999999"},
		{http.MethodGet, "/deployments/999999/ping"},
		{http.MethodGet, "/deployments/999999/logs"},
		{http.MethodGet, "/deployments/999999/stats"},
		{http.MethodPost, "/deployments/999999/predict"},
	} {
		expect(t, call(t, c.method, c.path, map[string]any{"data": irisRows}), http.StatusNotFound)
	}
	expect(t, call(t, http.MethodGet, "/deployments?_sort=nope", nil), http.StatusBadRequest)

	// An alias resolves to its version, and the deployment keeps both.
	r := mlflowAPI(t, p, http.MethodPost, "registered-models/alias", map[string]string{"name": f.model, "alias": "champion", "version": f.version})
	expect(t, r, http.StatusOK)
	r = call(t, http.MethodPost, "/deployments", map[string]any{"project_id": p.Name, "model_id": f.model, "version": "champion"})
	expect(t, r, http.StatusAccepted)
	var d deployment
	r.JSON(t, &d)
	t.Cleanup(func() { deleteDeploymentQuietly(d.ID) })
	if d.Version != f.version || d.Alias != "champion" || d.ProjectID != p.ID {
		t.Fatalf("deployed by alias: %+v, want version %s of project %s", d, f.version, p.ID)
	}
	// Deleting before it runs: a deleted deployment never runs.
	expect(t, call(t, http.MethodDelete, "/deployments/"+d.ID, nil), http.StatusOK)
	expect(t, call(t, http.MethodPut, "/deployments/"+d.ID+"/run", nil), http.StatusNotFound)
	expect(t, call(t, http.MethodDelete, "/deployments/"+d.ID, nil), http.StatusNotFound)
}

// modelStats is GET /deployments/{id}/stats.
type modelStats struct {
	Processes  int     `json:"processes"`
	PSSBytes   int64   `json:"pssBytes"`
	RSSBytes   int64   `json:"rssBytes"`
	CPUSeconds float64 `json:"cpuSeconds"`
	MeasuredBy string  `json:"measuredBy"`
}

func deploymentStats(t *testing.T, id string) modelStats {
	t.Helper()
	r := call(t, http.MethodGet, "/deployments/"+id+"/stats", nil)
	expect(t, r, http.StatusOK)
	var st modelStats
	r.JSON(t, &st)
	return st
}
