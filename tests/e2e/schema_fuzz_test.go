package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// Bounds of the schema fuzzer, so `make test` stays within minutes on
// two cores. E2E_FUZZ_EXAMPLES and E2E_FUZZ_SECONDS raise them for a
// deeper run by hand.
const (
	fuzzExamples = 12
	fuzzSeconds  = 150
	fuzzSeed     = "20261201"
	fuzzAddr     = "127.0.0.1:15191"
)

// fuzzExcluded are the routes the fuzzer leaves out, each for a reason
// the fuzzer cannot work around:
//   - /projects/{id}/mlflow/{path}: the data-plane reverse proxy; its
//     bodies are MLflow's own REST API, which this document does not
//     describe (its own contract is checked by tracking_*_test.go with
//     the stock mlflow client);
//   - /deployments/{id}/predict and /artifacts/content: byte streams to
//     model and tracking servers; random ids only ever reach the 404
//     before the stream, which the control-plane routes already cover;
//   - /events: a Server-Sent Events stream that never ends by design.
var fuzzExcluded = `^/(projects/\{id\}/mlflow/\{path\}|deployments/\{id\}/predict|artifacts/content|events)$`

// TestSchemaFuzz runs schemathesis (pinned in python/requirements-test.txt)
// over the served /openapi.json against a whole panel with auth on and
// fails on any 5xx, any response that does not match the document, and
// any request the document calls invalid that the panel accepted.
func TestSchemaFuzz(t *testing.T) {
	bin := filepath.Join(repoRoot, ".venv", "bin", "schemathesis")
	if v := os.Getenv("E2E_SCHEMATHESIS"); v != "" { // another install, for a run by hand
		bin = v
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("schemathesis is not installed in .venv (%v): run `make venv`", err)
	}
	cfg := panelCfg
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.Ports = proc.Range{Lo: 15150, Hi: 15154}
	cfg.Projects.StopOnExit = true
	cfg.Projects.PublicURL = "http://" + fuzzAddr
	cfg.Gateway.Addr = fuzzAddr
	cfg.Gateway.Auth = true
	cfg.Gateway.AdminToken = "mlp_fuzz-admin-token"
	cfg.Gateway.SpecCheck = true
	s, err := stack.Start(context.Background(), cfg, boot.Logger("error"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); assertSpec(t, s) })

	// A running project with a run and an artifact, so that a share of
	// the generated calls reach MLflow instead of stopping at "project
	// not found": MLflow's own 500s to bad input are what this finds.
	seed := fuzzSeedData(t, &teamPanel{Stack: s, admin: cfg.Gateway.AdminToken})
	dir := t.TempDir() // no stray .hypothesis or config in the repository
	if err := os.WriteFile(filepath.Join(dir, "schemathesis.toml"), []byte(seed.config()), 0o600); err != nil {
		t.Fatal(err)
	}

	examples, seconds := envInt("E2E_FUZZ_EXAMPLES", fuzzExamples), envInt("E2E_FUZZ_SECONDS", fuzzSeconds)
	// The process gets a minute beyond --max-time to finish the operation
	// it is in and to write its report.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+60)*time.Second)
	defer cancel()
	args := []string{"--no-color", "run", s.URL + "/openapi.json",
		"--header", "Authorization: Bearer " + cfg.Gateway.AdminToken,
		"--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection",
		"--phases", "examples,coverage,fuzzing",
		"--max-examples", strconv.Itoa(examples),
		"--max-time", strconv.Itoa(seconds),
		"--seed", fuzzSeed,
		"--workers", "1",
		"--request-timeout", "30",
		"--exclude-path-regex", fuzzExcluded,
		"--suppress-health-check", "all",
		"--generation-database", "none",
	}
	// E2E_FUZZ_ARGS adds options for a run by hand, e.g. --include-path /runs.
	args = append(args, strings.Fields(os.Getenv("E2E_FUZZ_ARGS"))...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SCHEMATHESIS_HOOKS=")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("schemathesis did not finish within %ds:\n%s", seconds+60, tail(out, 20000))
	}
	if err != nil {
		t.Fatalf("schemathesis found failures (%v):\n%s", err, tail(out, 60000))
	}
	t.Logf("schemathesis:\n%s", tail(out, 4000))
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func tail(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return fmt.Sprintf("…%s", b[len(b)-n:])
}

// fuzzSeed is what the fuzzer is steered towards, part of the time.
type fuzzSeedIDs struct{ project, experiment, run string }

// config is a schemathesis.toml that draws project_id, run_id and
// experiment_id from the seed data with some probability, and leaves the
// rest of the values to the fuzzer.
func (f fuzzSeedIDs) config() string {
	return fmt.Sprintf(`[dictionaries.projects]
values = [%q]
[dictionaries.runs]
values = [%q]
[dictionaries.experiments]
values = [%q]
[parameters]
"query.project_id" = { dictionary = "projects", probability = 0.7 }
"query.run_id" = { dictionary = "runs", probability = 0.6 }
"query.experiment_id" = { dictionary = "experiments", probability = 0.5 }
`, f.project, f.run, f.experiment)
}

func fuzzSeedData(t *testing.T, tp *teamPanel) fuzzSeedIDs {
	t.Helper()
	r := tp.as(t, tp.admin, http.MethodPost, "/projects", map[string]string{"name": "fuzz"})
	expect(t, r, http.StatusCreated)
	var p project
	r.JSON(t, &p)
	expect(t, tp.as(t, tp.admin, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	deadline := time.Now().Add(3 * time.Minute)
	for tp.projectStatus(t, p.ID) != "running" {
		if time.Now().After(deadline) {
			t.Fatalf("project fuzz is %s after 3 minutes", tp.projectStatus(t, p.ID))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The proxy learns the status from events; wait until it lets through.
	for tp.as(t, tp.admin, http.MethodGet, "/projects/fuzz/mlflow/health", nil).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the MLflow proxy of project fuzz did not answer within 3 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}
	out := python(t, `
import mlflow
mlflow.set_experiment("fuzz")
with mlflow.start_run() as r:
    mlflow.log_param("alpha", "0.5")
    mlflow.log_metric("loss", 0.25, step=1)
    mlflow.log_text("hello", "reports/a.txt")
    print(r.info.experiment_id, r.info.run_id)
`, "MLFLOW_TRACKING_URI="+tp.URL+"/projects/fuzz/mlflow", "MLFLOW_TRACKING_TOKEN="+tp.admin)
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("seeding the fuzz project printed %q", out)
	}
	return fuzzSeedIDs{project: "fuzz", experiment: f[len(f)-2], run: f[len(f)-1]}
}
