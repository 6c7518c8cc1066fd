package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestRefusedFiltersLeaveASleepingProjectAsleep: a run filter MLflow's
// grammar refuses is answered with MLflow's 400 and message without
// waking the sleeping project, whether it comes to GET /runs or through
// the MLflow proxy (the stock client's runs/search); so is an order_by
// naming a field twice. A filter MLflow accepts wakes it and answers.
func TestRefusedFiltersLeaveASleepingProjectAsleep(t *testing.T) {
	r := call(t, http.MethodPost, "/projects", map[string]string{"name": "napper", "idleTimeout": "3s"})
	expect(t, r, http.StatusCreated)
	var p sleepyProject
	r.JSON(t, &p)
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	waitSleepy(t, panel.URL, p.ID, "running", 3*time.Minute)
	out := python(t, `import mlflow
exp = mlflow.set_experiment("naps")
with mlflow.start_run():
    mlflow.log_param("lr", "0.01")
    mlflow.log_metric("accuracy", 0.9)
print("EXPERIMENT", exp.experiment_id)
`, "MLFLOW_TRACKING_URI="+panel.URL+"/projects/napper/mlflow")
	expID := strings.TrimSpace(out[strings.LastIndex(out, "EXPERIMENT ")+len("EXPERIMENT "):])
	waitSleepy(t, panel.URL, p.ID, "sleeping", time.Minute)
	wakes := func() int {
		var st struct {
			Wakes int `json:"wakes"`
		}
		s := call(t, http.MethodGet, "/projects/"+p.ID+"/stats", nil)
		expect(t, s, http.StatusOK)
		s.JSON(t, &st)
		return st.Wakes
	}
	before := wakes()

	runs := func(q url.Values) response {
		q.Set("project_id", p.ID)
		return call(t, http.MethodGet, "/runs?"+q.Encode(), nil)
	}
	for filter, want := range map[string]string{
		"params.lr > '0.1'":         "Invalid comparator '>' not one of",
		"metrics.accuracy = 'high'": "Expected numeric value type for metric",
		"foo.bar = 'x'":             "Invalid entity type 'foo'",
	} {
		got := runs(url.Values{"filter": {filter}})
		if got.Status != http.StatusBadRequest || !strings.HasPrefix(got.Message(), want) {
			t.Errorf("GET /runs filter=%q: %d %s; want a 400 with MLflow's %q", filter, got.Status, got.Body, want)
		}
	}
	if got := runs(url.Values{"order_by": {"metrics.accuracy DESC, metrics.accuracy"}}); got.Status != http.StatusBadRequest || !strings.Contains(got.Message(), "twice") {
		t.Errorf("GET /runs with order_by naming a field twice: %d %s; want a 400", got.Status, got.Body)
	}
	// The stock client through the proxy: MLflow's exception, error code
	// and message, as its own server would raise them.
	// (By experiment id: a name would be looked up first, which wakes.)
	out = python(t, `import os, mlflow
from mlflow.exceptions import MlflowException
try:
    mlflow.search_runs(experiment_ids=[os.environ["NAP_EXPERIMENT"]], filter_string="params.lr > '0.1'")
    print("ACCEPTED")
except MlflowException as e:
    print("REFUSED", e.error_code, e.message)
`, "MLFLOW_TRACKING_URI="+panel.URL+"/projects/napper/mlflow", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0", "NAP_EXPERIMENT="+expID)
	if !strings.Contains(out, "REFUSED INVALID_PARAMETER_VALUE ") || !strings.Contains(out, "Invalid comparator '>' not one of") {
		t.Errorf("the stock client's search with a refused filter printed %q; want MLflow's INVALID_PARAMETER_VALUE", out)
	}
	if s := waitSleepy(t, panel.URL, p.ID, "sleeping", time.Second); s.Status != "sleeping" || wakes() != before {
		t.Errorf("refused filters woke the project: %s, %d wakes (was %d)", s.Status, wakes(), before)
	}

	// A filter MLflow accepts needs the server: it wakes and answers.
	got := runs(url.Values{"filter": {"params.lr = '0.01' and metrics.accuracy > 0.5"}})
	expect(t, got, http.StatusOK)
	var items []struct{}
	got.JSON(t, &items)
	if len(items) != 1 || wakes() != before+1 {
		t.Errorf("an accepted filter: %d runs after %d wakes (was %d); want the run, after one wake", len(items), wakes(), before)
	}
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
	expect(t, call(t, http.MethodDelete, "/projects/"+p.ID, nil), http.StatusOK)
}
