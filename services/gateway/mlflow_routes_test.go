package gateway

import (
	"bytes"
	"go/format"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instance turns a route pattern into a path it serves.
func instance(pattern string) string {
	p := regexp.MustCompile(`\{[^}]+\.\.\.\}`).ReplaceAllString(pattern, "1/abc/model.pkl")
	return regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(p, "p1")
}

// TestMLflowRouteTableClassifies: every route of the pinned MLflow is
// classified by its exact method and route, so a viewer may call exactly
// the reads.
func TestMLflowRouteTableClassifies(t *testing.T) {
	if len(mlflowRoutes) < 300 {
		t.Fatalf("the table lists %d routes; MLflow %s serves over 400", len(mlflowRoutes), mlflowVersion)
	}
	for _, r := range mlflowRoutes {
		path := instance(r.pattern)
		want := projWrite
		if r.read {
			want = projRead
		}
		if got := mlflowNeed(r.method, path); got != want {
			t.Errorf("%s %s (route %s, read=%v): need %d, want %d", r.method, path, r.pattern, r.read, got, want)
		}
		if r.method == http.MethodGet && mlflowNeed(http.MethodHead, path) != want {
			t.Errorf("HEAD %s is not classified as its GET", path)
		}
	}
}

func TestMLflowNeed(t *testing.T) {
	reads := []string{
		// The MLflow UI's run page and the reads the issue found refused.
		"POST /graphql",
		"POST /ajax-api/2.0/mlflow/experiments/search-datasets",
		"POST /api/3.0/mlflow/datasets/search",
		"POST /api/2.0/mlflow/registered-models/get-latest-versions",
		"POST /api/3.0/mlflow/traces/metrics",
		"POST /api/3.0/mlflow/traces/calculate-filter-correlation",
		"POST /api/3.0/mlflow/traces/batchGetInfos",
		"POST /ajax-api/3.0/mlflow/traces/batchGetInfos",
		"POST /api/3.0/mlflow/issues/search",
		"POST /api/3.0/mlflow/prompt-optimization/jobs/search",
		"POST /api/2.0/mlflow/runs/search",
		"POST /api/2.0/mlflow/experiments/search",
		"GET /api/2.0/mlflow/experiments/get-by-name",
		"GET /api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model.pkl",
		"HEAD /api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model.pkl",
		"GET /",
	}
	writes := []string{
		// The suffix trick: a read's path after an upload's or a delete's.
		"PUT /api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/evil/runs/search",
		"DELETE /api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/evil/runs/search",
		"PUT /ajax-api/2.0/mlflow-artifacts/artifacts/evil/experiments/search",
		"POST /api/2.0/mlflow-artifacts/mpu/create/evil/runs/search",
		"POST /api/2.0/mlflow/runs/log-batch",
		"POST /api/2.0/mlflow/experiments/create",
		"POST /ajax-api/3.0/mlflow/review-queues/get-or-create-user",
		// Not MLflow routes: deny by default.
		"POST /api/2.0/mlflow/runs/search/",
		"POST //api/2.0/mlflow/runs/search",
		"POST /api/2.0/mlflow/runs/search/../../experiments/create",
		"GET /api/2.0/mlflow/no-such-thing",
		"PATCH /api/2.0/mlflow/runs/search",
		"GET /api/2.0/mlflow-artifacts/artifacts/../../../etc/passwd",
	}
	for _, c := range reads {
		m, p, _ := strings.Cut(c, " ")
		if mlflowNeed(m, p) != projRead {
			t.Errorf("%s is a read: a viewer may call it", c)
		}
	}
	for _, c := range writes {
		m, p, _ := strings.Cut(c, " ")
		if mlflowNeed(m, p) != projWrite {
			t.Errorf("%s needs an editor", c)
		}
	}
}

// TestMLflowRouteTableIsCurrent regenerates the table from the MLflow in
// .venv and fails when the checked-in file differs.
func TestMLflowRouteTableIsCurrent(t *testing.T) {
	py := filepath.Join("..", "..", ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Skipf("no .venv (make venv) to generate the table with: %v", err)
	}
	cmd := exec.Command(py, filepath.Join("mlflowroutes", "gen.py"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mlflowroutes/gen.py: %v\n%s", err, stderr.String())
	}
	want, err := format.Source(out)
	if err != nil {
		t.Fatalf("the generator wrote Go that does not parse: %v", err)
	}
	have, err := os.ReadFile("mlflow_routes_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Fatal("mlflow_routes_gen.go is stale for the MLflow in .venv: run `make mlflowroutes`")
	}
}
