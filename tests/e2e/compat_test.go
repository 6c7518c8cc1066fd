package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
)

// compatPublicURL is the URL users reach the shared panel's gateway at,
// for the MLflow UI's Origin check. Only the gateway reads it here (the
// projects still hand out direct MLflow URLs).
const compatPublicURL = "http://mlpanel.e2e.example"

func init() {
	serviceConfigurers = append(serviceConfigurers, func(cfg *stack.Config, home string) {
		cfg.Gateway.PublicURL = compatPublicURL
	})
}

// TestOriginalClientDeployments drives deployments the way the original
// mlpanel's clients did: everything in the query, pandas documents in a
// "data" field, {"deployment_id"} answers, null host and port once stopped,
// the schema endpoint.
func TestOriginalClientDeployments(t *testing.T) {
	f := depSetup(t)
	p := f.project

	// The original's public shape: all in the query, no body.
	q := url.Values{"project_id": {p.ID}, "model_id": {f.model}, "version": {f.version}, "type": {"local"}}
	r := call(t, http.MethodPost, "/deployments?"+q.Encode(), nil)
	expect(t, r, http.StatusAccepted)
	var created map[string]any
	r.JSON(t, &created)
	id, _ := created["id"].(string)
	t.Cleanup(func() { deleteDeploymentQuietly(id) })
	if id == "" || created["deployment_id"] != id || created["version"] != f.version || created["model_id"] != f.model {
		t.Fatalf("POST /deployments with the query answered %s", r.Body)
	}
	d := waitDeployment(t, id, "running", 4*time.Minute)

	// The model's signature and input example.
	r = call(t, http.MethodGet, "/deployments/"+id+"/schema", nil)
	expect(t, r, http.StatusOK)
	var sc struct {
		ID           string           `json:"id"`
		Version      string           `json:"version"`
		Inputs       []map[string]any `json:"inputs"`
		Outputs      []map[string]any `json:"outputs"`
		InputExample json.RawMessage  `json:"input_example"`
	}
	r.JSON(t, &sc)
	var names []string
	for _, in := range sc.Inputs {
		names = append(names, fmt.Sprint(in["name"]))
	}
	if sc.ID != id || sc.Version != f.version || !reflect.DeepEqual(names, d.InputColumns) || len(sc.Outputs) == 0 ||
		len(sc.InputExample) < 10 || !strings.Contains(string(sc.InputExample), d.InputColumns[0]) {
		t.Fatalf("schema %s: want the 4 iris inputs %v, outputs and the input example", r.Body, d.InputColumns)
	}
	expect(t, call(t, http.MethodGet, "/deployments/nope/schema", nil), http.StatusNotFound)

	// pandas documents as the original's clients made them: pandas itself
	// writes them, with an extra column the model does not take.
	rows, _ := json.Marshal(irisRows)
	cols, _ := json.Marshal(d.InputColumns)
	out := python(t, fmt.Sprintf(`import pandas as pd
df = pd.DataFrame(%s, columns=%s)
df["label"] = "x"
for orient in ("table", "split", "records"):
    print(orient.upper() + "=" + df.to_json(orient=orient))
`, rows, cols))
	want := pythonPredictions(t, p, f.model, f.version)
	for _, orient := range []string{"TABLE", "SPLIT", "RECORDS"} {
		var doc string
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(line, orient+"="); ok {
				doc = v
			}
		}
		var docObj any
		if err := json.Unmarshal([]byte(doc), &docObj); err != nil {
			t.Fatalf("pandas %s document %q: %v", orient, doc, err)
		}
		for name, tc := range map[string]struct {
			body any
			ct   []string
		}{
			"form":        {"data=" + url.QueryEscape(doc), []string{"application/x-www-form-urlencoded"}},
			"JSON string": {map[string]any{"data": doc}, nil},
			"JSON object": {map[string]any{"data": docObj}, nil},
		} {
			r := call(t, http.MethodPost, "/deployments/"+id+"/predict", tc.body, tc.ct...)
			if r.Status != http.StatusOK {
				t.Errorf("orient %s as %s: status %d %s", orient, name, r.Status, r.Body)
				continue
			}
			var got struct {
				Predictions []any  `json:"predictions"`
				Prediction  string `json:"prediction"`
			}
			r.JSON(t, &got)
			var original struct {
				Predictions []any `json:"predictions"`
			}
			if err := json.Unmarshal([]byte(got.Prediction), &original); err != nil {
				t.Errorf("orient %s as %s: prediction %q is not the model server's JSON answer", orient, name, got.Prediction)
			}
			if !reflect.DeepEqual(got.Predictions, want) || !reflect.DeepEqual(original.Predictions, want) {
				t.Errorf("orient %s as %s: predictions %v / prediction %s, want %v (the model in Python)", orient, name, got.Predictions, got.Prediction, want)
			}
		}
	}
	// A document without a column the model needs says which.
	r = call(t, http.MethodPost, "/deployments/"+id+"/predict", map[string]any{"data": map[string]any{"columns": []string{"x"}, "data": [][]float64{{1}}}})
	expect(t, r, http.StatusBadRequest)
	if !strings.Contains(r.Message(), d.InputColumns[0]) {
		t.Errorf("missing column answered %q, want it named", r.Message())
	}

	// Stop: {"deployment_id"}, then host and port are null.
	r = call(t, http.MethodPut, "/deployments/"+id+"/stop", nil)
	expect(t, r, http.StatusOK)
	var stopped map[string]any
	r.JSON(t, &stopped)
	if stopped["deployment_id"] != id {
		t.Fatalf("stop answered %s, want deployment_id %s", r.Body, id)
	}
	waitDeployment(t, id, "stopped", time.Minute)
	r = call(t, http.MethodGet, "/deployments/"+id, nil)
	var got map[string]any
	r.JSON(t, &got)
	for _, k := range []string{"host", "port", "url"} {
		if v, ok := got[k]; !ok || v != nil {
			t.Errorf("stopped deployment: %s = %v (present %v), want null as the original answered", k, v, ok)
		}
	}
	r = call(t, http.MethodPut, "/deployments/"+id+"/run", nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &got)
	if got["deployment_id"] != id {
		t.Errorf("run answered %s, want deployment_id", r.Body)
	}
	r = call(t, http.MethodDelete, "/deployments/"+id, nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &got)
	if got["deployment_id"] != id {
		t.Errorf("delete answered %s, want deployment_id", r.Body)
	}
}

// TestOriginalClientTracking: the original's id keys on create and delete
// answers, registry sources in runs:/ and models:/ notation, and the
// service-level /healthcheck.
func TestOriginalClientTracking(t *testing.T) {
	f := trkSetup(t)

	r := call(t, http.MethodGet, "/healthcheck", nil)
	expect(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != `"OK"` {
		t.Errorf("/healthcheck answered %s, want \"OK\"", r.Body)
	}

	var got map[string]any
	r = call(t, http.MethodPost, "/experiments?project_id="+f.p.ID, "name=compat-exp", "application/x-www-form-urlencoded")
	expect(t, r, http.StatusCreated)
	r.JSON(t, &got)
	expID, _ := got["id"].(string)
	if expID == "" || got["experiment_id"] != expID {
		t.Fatalf("experiment create answered %s, want experiment_id", r.Body)
	}
	r = call(t, http.MethodDelete, "/experiments/"+expID+"?project_id="+f.p.ID, nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &got)
	if got["experiment_id"] != expID {
		t.Errorf("experiment delete answered %s, want experiment_id", r.Body)
	}

	r = mlflowAPI(t, f.p, http.MethodPost, "runs/create", map[string]any{"experiment_id": f.exampleExp})
	expect(t, r, http.StatusOK)
	var made struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	r.JSON(t, &made)
	runID := made.Run.Info.RunID
	r = call(t, http.MethodDelete, "/runs/"+runID+"?project_id="+f.p.ID, nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &got)
	if got["run_id"] != runID {
		t.Errorf("run delete answered %s, want run_id %s", r.Body, runID)
	}

	// runs:/ as the stock client resolves it: the run's model folder.
	const name = "compat-registry"
	run := trkMLflowRun(t, f.p, f.exampleRun)
	r = call(t, http.MethodPost, "/registered-models?project_id="+f.p.ID,
		map[string]any{"name": name, "source": "runs:/" + f.exampleRun + "/model"})
	expect(t, r, http.StatusCreated)
	var m struct {
		ID             string `json:"id"`
		ModelID        string `json:"model_id"`
		CreatedVersion *struct {
			Version string `json:"version"`
			Source  string `json:"source"`
			RunID   string `json:"run_id"`
		} `json:"created_version"`
	}
	r.JSON(t, &m)
	if m.ModelID != name || m.CreatedVersion == nil || m.CreatedVersion.Source != run.Info.ArtifactURI+"/model" || m.CreatedVersion.RunID != f.exampleRun {
		t.Fatalf("runs:/ source registered %s; want source %s/model, run %s, model_id %s", r.Body, run.Info.ArtifactURI, f.exampleRun, name)
	}
	// models:/<name>/<version>: the version's own storage location.
	var v1 trkVersion
	trkGet(t, "/model-versions/1", trkQ("project_id", f.p.ID, "model_id", f.modelName), http.StatusOK).JSON(t, &v1)
	r = call(t, http.MethodPost, "/registered-models?project_id="+f.p.ID,
		url.Values{"name": {name}, "source": {"models:/" + f.modelName + "/1"}}.Encode(), "application/x-www-form-urlencoded")
	expect(t, r, http.StatusCreated)
	r.JSON(t, &m)
	if m.CreatedVersion == nil || m.CreatedVersion.Version != "2" || m.CreatedVersion.Source != v1.Source {
		t.Fatalf("models:/ source registered %s; want version 2 with source %s", r.Body, v1.Source)
	}
	// A run without such a model is a 400 that says so, not MLflow's refusal.
	r = call(t, http.MethodPost, "/registered-models?project_id="+f.p.ID,
		map[string]any{"name": name, "source": "runs:/" + f.exampleRun + "/no-such-model"})
	expect(t, r, http.StatusBadRequest)
	r = call(t, http.MethodDelete, "/registered-models/"+name+"?project_id="+f.p.ID, nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &got)
	if got["model_id"] != name {
		t.Errorf("model delete answered %s, want model_id", r.Body)
	}
}

// proxyCall sends a request through the gateway's MLflow proxy with extra
// headers (Host is set on the request itself).
func proxyCall(t *testing.T, p project, method, path, body string, hdr map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, panel.URL+"/projects/"+p.ID+"/mlflow"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// TestMLflowProxyCompat: once the API says a project runs, the proxy
// serves it (no stale "starting"); the MLflow UI opened through the
// gateway may list runs, other origins stay refused by MLflow.
func TestMLflowProxyCompat(t *testing.T) {
	p := createProject(t, "compat-proxy")
	t.Cleanup(func() { call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil) })
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	search := `{"max_results": 5}`
	// Use the proxy while it starts (so the gateway has seen "starting"),
	// as a script waiting for the project would; the README's workflow.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := proxyCall(t, p, http.MethodPost, "/api/2.0/mlflow/experiments/search", search, nil)
		if r.Status != http.StatusConflict && r.Status != http.StatusOK {
			t.Fatalf("while starting the proxy answered %d %s", r.Status, r.Body)
		}
		if getProject(t, p.ID).Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the project did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The API said running: the proxy must not answer an older state.
	r := proxyCall(t, p, http.MethodPost, "/api/2.0/mlflow/experiments/search", search, nil)
	expect(t, r, http.StatusOK)

	// The MLflow UI through the gateway: its page, then its own POSTs.
	r = proxyCall(t, p, http.MethodGet, "/", "", nil)
	expect(t, r, http.StatusOK)
	if !strings.Contains(strings.ToLower(string(r.Body)), "<html") {
		t.Fatalf("the MLflow UI page is not HTML: %.200s", r.Body)
	}
	runs := `{"experiment_ids": ["0"], "max_results": 10}`
	for name, hdr := range map[string]map[string]string{
		"at MLPANEL_PUBLIC_URL":     {"Origin": compatPublicURL},
		"at the gateway's own host": {"Host": "panel.e2e.example:8443", "Origin": "https://panel.e2e.example:8443"},
	} {
		r = proxyCall(t, p, http.MethodPost, "/ajax-api/2.0/mlflow/runs/search", runs, hdr)
		if r.Status != http.StatusOK {
			t.Errorf("MLflow UI %s: runs/search answered %d %s", name, r.Status, r.Body)
		}
	}
	// Another site's page may not write through a user's browser.
	for _, origin := range []string{"http://evil.e2e.example", "http://mlpanel.e2e.example.evil.test"} {
		r = proxyCall(t, p, http.MethodPost, "/ajax-api/2.0/mlflow/runs/search", runs, map[string]string{"Origin": origin})
		if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "Cross-origin") {
			t.Errorf("Origin %s: runs/search answered %d %s, want MLflow's 403", origin, r.Status, r.Body)
		}
	}
}
