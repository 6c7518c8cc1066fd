package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
)

func init() {
	serviceConfigurers = append(serviceConfigurers, func(cfg *stack.Config, home string) {
		cfg.Projects.ImportRoot = filepath.Join(home, "import-root")
		_ = os.MkdirAll(cfg.Projects.ImportRoot, 0o755)
	})
}

// treeHash is one hash of every file's path and bytes under dir.
func treeHash(t *testing.T, dir string) string {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

const oldServerLog = `import mlflow, os, sys
mlflow.set_experiment("old-server")
with mlflow.start_run() as r:
    mlflow.log_param("alpha", "0.5")
    for s in range(5):
        mlflow.log_metric("loss", 1.0 / (s + 1), step=s)
    mlflow.log_text("from the old server", "notes/old.txt")
print("run_id=" + r.info.run_id)
`

// TestProjectAdoptExistingMLflow: an admin creates projects from an
// existing MLflow file store and an existing SQLite server under
// MLPANEL_IMPORT_ROOT; the sources stay untouched, the runs, metric
// histories and artifacts answer through the new projects' servers, and
// paths outside the root are refused.
func TestProjectAdoptExistingMLflow(t *testing.T) {
	root := panelCfg.Projects.ImportRoot

	fsDir := filepath.Join(root, "old-fs")
	fsRun := depLine(t, python(t, `import os; os.makedirs(`+jsonString(fsDir)+`, exist_ok=True); os.chdir(`+jsonString(fsDir)+`)
`+oldServerLog, "MLFLOW_TRACKING_URI=file://"+fsDir+"/mlruns", "MLFLOW_ALLOW_FILE_STORE=true"), "run_id=")

	sqlDir := filepath.Join(root, "old-sql")
	if err := os.MkdirAll(filepath.Join(sqlDir, "artifacts"), 0o755); err != nil {
		t.Fatal(err)
	}
	sqlRun := depLine(t, python(t, `import mlflow
mlflow.create_experiment("old-server", artifact_location="file://`+sqlDir+`/artifacts")
`+oldServerLog, "MLFLOW_TRACKING_URI=sqlite:///"+sqlDir+"/mlflow.db"), "run_id=")

	before := map[string]string{fsDir: treeHash(t, fsDir), sqlDir: treeHash(t, sqlDir)}

	cases := []struct {
		name, runID string
		source      map[string]string
	}{
		{"adopted-fs", fsRun, map[string]string{"backend_store_uri": fsDir, "artifact_root": "file://" + fsDir + "/mlruns"}},
		{"adopted-sql", sqlRun, map[string]string{"backend_store_uri": "sqlite:///" + sqlDir + "/mlflow.db", "artifact_root": sqlDir + "/artifacts"}},
	}
	for _, c := range cases {
		r := call(t, http.MethodPost, "/projects", map[string]any{"name": c.name, "source": c.source})
		expect(t, r, http.StatusCreated)
		var p project
		r.JSON(t, &p)
		expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
		p = waitProject(t, p.ID, "running", 3*time.Minute)

		r = mlflowAPI(t, p, http.MethodGet, "metrics/get-history?run_id="+c.runID+"&metric_key=loss", nil)
		expect(t, r, http.StatusOK)
		if n := strings.Count(string(r.Body), `"key"`); n != 5 {
			t.Errorf("%s: loss history has %d points, want 5: %s", c.name, n, r.Body)
		}
		// Served through the project's own server, as remote clients need.
		path := experimentPath(t, p, c.runID)
		if b := artifactBytes(t, p, path+"/notes/old.txt"); string(b) != "from the old server" {
			t.Errorf("%s: artifact through the new server: %q", c.name, b)
		}
		expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
	}
	for dir, h := range before {
		if treeHash(t, dir) != h {
			t.Errorf("adopting changed the source %s", dir)
		}
	}

	// Outside the root, or not there: 400 with the rule, and no project.
	n := countProjects(t)
	for _, src := range []map[string]string{
		{"backend_store_uri": "sqlite:////etc/passwd", "artifact_root": sqlDir + "/artifacts"},
		{"backend_store_uri": "sqlite:///" + sqlDir + "/../../mlflow.db", "artifact_root": sqlDir + "/artifacts"},
		{"backend_store_uri": "sqlite:///" + sqlDir + "/mlflow.db", "artifact_root": "/tmp"},
		{"backend_store_uri": "postgresql://db/mlflow", "artifact_root": sqlDir + "/artifacts"},
	} {
		r := call(t, http.MethodPost, "/projects", map[string]any{"name": "adopt-refused", "source": src})
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Message(), "source.") {
			t.Errorf("source %v: %d %s, want 400 naming the field", src, r.Status, r.Body)
		}
	}
	if countProjects(t) != n {
		t.Error("a refused source created a project")
	}
}
