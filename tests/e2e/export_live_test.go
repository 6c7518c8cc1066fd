package e2e

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/archive"
)

// TestExportWhileLogging: exports taken while the stock client logs
// batches of ten metrics (one transaction each) hold a database that
// passes SQLite's integrity check and never half a batch.
func TestExportWhileLogging(t *testing.T) {
	p := runningProject(t, "export-live")
	cmd := exec.Command(filepath.Join(repoRoot, ".venv", "bin", "python"), "-c", `import mlflow, time
from mlflow.entities import Metric
mlflow.set_experiment("live")
c = mlflow.MlflowClient()
with mlflow.start_run() as r:
    print("run_id=" + r.info.run_id, flush=True)
    for i in range(100000):
        now = int(time.time() * 1000)
        c.log_batch(r.info.run_id, metrics=[Metric("m%d" % k, float(i), now, i) for k in range(10)])
`)
	cmd.Env = append(os.Environ(), "MLFLOW_TRACKING_URI="+p.MlflowURI, "GIT_PYTHON_REFRESH=quiet")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "run_id=") {
		if time.Now().After(deadline) {
			t.Fatalf("the client never started logging: %s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	for i := 0; i < 3; i++ {
		r := call(t, http.MethodGet, "/projects/"+p.ID+"/export", nil)
		expect(t, r, http.StatusOK)
		dir := filepath.Join(t.TempDir(), "x")
		if _, err := archive.Extract(bytes.NewReader(r.Body), dir); err != nil {
			t.Fatalf("export %d: %v", i, err)
		}
		got := python(t, `import sqlite3
c = sqlite3.connect(`+jsonString(filepath.Join(dir, "mlflow.db"))+`)
print("OK=" + c.execute("PRAGMA integrity_check").fetchone()[0])
print("N=%d" % c.execute("SELECT count(*) FROM metrics").fetchone()[0])
print("HALF=%d" % c.execute("SELECT count(*) FROM (SELECT step FROM metrics GROUP BY step HAVING count(*) != 10)").fetchone()[0])`)
		if depLine(t, got, "OK=") != "ok" || depLine(t, got, "HALF=") != "0" {
			t.Errorf("export %d while logging: %s", i, got)
		}
		t.Logf("export %d: %s metric rows", i, depLine(t, got, "N="))
		time.Sleep(time.Second)
	}
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
}

// lockedBuffer is written by the child's output copier while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
