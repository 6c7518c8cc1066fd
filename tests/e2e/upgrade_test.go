package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/services/projects/adapters/mlflowdb"
)

// legacyMlflow is the older MLflow whose databases the upgrade must
// migrate. mlflow-skinny carries MLflow's own store and migrations
// without the UI, so the throwaway virtualenv installs in seconds; it is
// cached under the user's cache folder, so a run builds it at most once.
const legacyMlflow = "2.22.1"

func legacyPython(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "mlpanel", "mlflow-"+legacyMlflow)
	py := filepath.Join(dir, "bin", "python")
	if _, err := os.Stat(filepath.Join(dir, ".installed")); err == nil {
		return py
	}
	_ = os.RemoveAll(dir)
	steps := [][]string{
		{filepath.Join(repoRoot, ".venv", "bin", "python"), "-m", "venv", dir},
		{filepath.Join(dir, "bin", "pip"), "install", "-q", "mlflow-skinny==" + legacyMlflow, "sqlalchemy>=1.4,<2.1", "alembic<2,!=1.10.0"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("building the MLflow %s virtualenv: %s: %v\n%s", legacyMlflow, strings.Join(s, " "), err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".installed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return py
}

// legacyScript logs a run with a metric history and registers a model
// version with an alias, all through MLflow 2's own client and store.
const legacyScript = `import sys, mlflow
from mlflow.tracking import MlflowClient
uri = "sqlite:///" + sys.argv[1]
c = MlflowClient(uri, registry_uri=uri)
exp = c.create_experiment("legacy")
rid = c.create_run(exp, run_name="old-run").info.run_id
c.log_param(rid, "alpha", "0.5")
c.set_tag(rid, "made_by", "mlflow-2")
for s in range(10):
    c.log_metric(rid, "loss", 1.0 / (s + 1), step=s)
c.set_terminated(rid)
c.create_registered_model("legacy-model")
mv = c.create_model_version("legacy-model", source="mlflow-artifacts:/1/" + rid + "/artifacts/model", run_id=rid)
c.set_registered_model_alias("legacy-model", "prod", mv.version)
print("run_id=" + rid)
`

// legacyProject creates a project whose database MLflow 2 made; extra
// SQL runs on it afterwards.
func legacyProject(t *testing.T, name, extraSQL string) (project, string, string) {
	t.Helper()
	py := legacyPython(t)
	p := createProject(t, name)
	var withPath struct {
		Path string `json:"path"`
	}
	call(t, http.MethodGet, "/projects/"+p.ID, nil).JSON(t, &withPath)
	db := filepath.Join(withPath.Path, "mlflow.db")
	out, err := exec.Command(py, "-c", legacyScript, db).CombinedOutput()
	if err != nil {
		t.Fatalf("MLflow %s: %v\n%s", legacyMlflow, err, out)
	}
	if extraSQL != "" {
		python(t, `import sqlite3; c = sqlite3.connect(`+jsonString(db)+`); c.executescript(`+jsonString(extraSQL)+`); c.commit()`)
	}
	rev, err := mlflowdb.Revision(context.Background(), db)
	if err != nil || rev == "" {
		t.Fatalf("revision of the MLflow %s database: %q %v", legacyMlflow, rev, err)
	}
	return p, depLine(t, string(out), "run_id="), db
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// described is a project as GET /projects/{id} shows it.
type described struct {
	project
	MlflowVersion  string `json:"mlflowVersion"`
	SchemaRevision string `json:"schemaRevision"`
}

func describe(t *testing.T, id string) described {
	var d described
	r := call(t, http.MethodGet, "/projects/"+id, nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &d)
	return d
}

// TestProjectUpgradeWithNet: a project whose database MLflow 2 made runs
// on the pinned MLflow after MLflow's own migration, with its data, and
// shows the new revision; a migration that fails restores the database
// as it was and says why.
func TestProjectUpgradeWithNet(t *testing.T) {
	pinned, err := mlflowdb.ReadPinned(context.Background(), panelCfg.Projects.Mlflow)
	if err != nil {
		t.Fatal(err)
	}

	p, runID, db := legacyProject(t, "legacy-ok", "")
	before := describe(t, p.ID)
	if before.SchemaRevision == pinned.Head || before.SchemaRevision == "" {
		t.Fatalf("the MLflow 2 database is at %q, want an older revision than %s", before.SchemaRevision, pinned.Head)
	}
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	p = waitProject(t, p.ID, "running", 5*time.Minute)
	after := describe(t, p.ID)
	if after.SchemaRevision != pinned.Head || after.MlflowVersion != pinned.Version {
		t.Errorf("after the upgrade: MLflow %q revision %q, want %s at %s", after.MlflowVersion, after.SchemaRevision, pinned.Version, pinned.Head)
	}
	r := mlflowAPI(t, p, http.MethodGet, "metrics/get-history?run_id="+runID+"&metric_key=loss", nil)
	expect(t, r, http.StatusOK)
	var hist struct {
		Metrics []json.RawMessage `json:"metrics"`
	}
	r.JSON(t, &hist)
	if len(hist.Metrics) != 10 {
		t.Errorf("loss history after the upgrade has %d points, want 10", len(hist.Metrics))
	}
	r = mlflowAPI(t, p, http.MethodGet, "registered-models/alias?name=legacy-model&alias=prod", nil)
	expect(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), `"version":"1"`) && !strings.Contains(string(r.Body), `"version": "1"`) {
		t.Errorf("alias prod after the upgrade: %s", r.Body)
	}
	if backups, _ := filepath.Glob(db + ".before-*"); len(backups) != 1 {
		t.Errorf("want one backup beside the database, found %v", backups)
	}
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)

	// A table a later migration creates already exists: MLflow's own
	// migration fails midway, and the backup must come back.
	bad, badRun, badDB := legacyProject(t, "legacy-bad", "CREATE TABLE issues (x INTEGER);")
	old := describe(t, bad.ID).SchemaRevision
	expect(t, call(t, http.MethodPut, "/projects/"+bad.ID+"/run", nil), http.StatusOK)
	deadline := time.Now().Add(3 * time.Minute)
	var got project
	for {
		got = getProject(t, bad.ID)
		if strings.Contains(got.LastError, "restored") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed migration reported: status %s, last error %q", got.Status, got.LastError)
		}
		time.Sleep(500 * time.Millisecond)
	}
	expect(t, call(t, http.MethodPut, "/projects/"+bad.ID+"/terminate", nil), http.StatusOK)
	if !strings.Contains(got.LastError, "issues") {
		t.Errorf("the last error does not carry the migration log: %q", got.LastError)
	}
	if rev := describe(t, bad.ID).SchemaRevision; rev != old {
		t.Errorf("after the failed migration the database is at %q, want it restored to %q", rev, old)
	}
	out := python(t, `import sqlite3; c = sqlite3.connect(`+jsonString(badDB)+`)
print("N=%d" % c.execute("SELECT count(*) FROM metrics WHERE run_uuid = ?", (`+jsonString(badRun)+`,)).fetchone()[0])`)
	if depLine(t, out, "N=") != "10" {
		t.Errorf("the restored database lost metrics: %s", out)
	}
}
