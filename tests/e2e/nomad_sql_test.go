package e2e

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadtest"
	"github.com/mlpanel/mlpanel/pkg/platform/pgtest"
)

// TestNomadSQLBackendNodeLoss: a backend postgresql project on Nomad
// (real PostgreSQL, real Nomad with two client nodes, real MLflow) keeps
// nothing on its node: its runs are on the database server, its
// artifacts under MLPANEL_NOMAD_ARTIFACTS_DESTINATION (a folder outside
// the project's), its database address in the job's Nomad Variable, not
// in the job. The stock client logs a run with params, metrics and an
// artifact through the gateway; the node that runs the project dies; the
// panel shows starting, then running on the other node; through the same
// gateway URL the run, its metric history and its artifact are all there,
// and a new run logs. Deleting the project removes the job's variable.
func TestNomadSQLBackendNodeLoss(t *testing.T) {
	server := pgtest.Start(t)
	c := nomadtest.Start(t, 2)
	home, dest := t.TempDir(), t.TempDir()
	s := nomadPanel(t, c, home, func(cfg *stack.Config) {
		cfg.Projects.ProjectDBURL, cfg.Tracking.ProjectDBURL = server, server
		cfg.Projects.NomadArtifacts = dest
	})
	t.Cleanup(s.Close)

	const name = "nomad-pg"
	r := at(t, s.URL, http.MethodPost, "/projects", map[string]string{"name": name, "backend": "postgresql"})
	expect(t, r, http.StatusCreated)
	var p struct {
		project
		Database string `json:"database"`
	}
	r.JSON(t, &p)
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	waitSleepy(t, s.URL, p.ID, "running", 3*time.Minute)

	// What read-job shows names no database; the job's variable does.
	nc := c.Client()
	jobName := "mlpanel-project-" + p.ID
	job, _, err := nc.Jobs().Info(jobName, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(job)
	if strings.Contains(string(raw), "postgresql://") || strings.Contains(string(raw), "MLFLOW_BACKEND_STORE_URI") {
		t.Errorf("the job of a PostgreSQL project carries its database address: %s", raw)
	}
	v, _, err := nc.Variables().Peek(nomadrt.SecretPath(jobName), nil)
	if err != nil || v == nil || !strings.Contains(v.Items["MLFLOW_BACKEND_STORE_URI"], "/"+p.Database) {
		t.Fatalf("the variable %s should hold the address of database %s: %+v, %v", nomadrt.SecretPath(jobName), p.Database, v, err)
	}

	tracking := "MLFLOW_TRACKING_URI=" + s.URL + "/projects/" + name + "/mlflow"
	out := python(t, `import mlflow, os, tempfile
mlflow.set_experiment("before-the-node-died")
path = os.path.join(tempfile.mkdtemp(), "hello.txt")
with open(path, "w") as f:
    f.write("kept-off-the-node")
with mlflow.start_run() as run:
    mlflow.log_param("alpha", "0.5")
    for step, loss in enumerate([0.9, 0.5, 0.25]):
        mlflow.log_metric("loss", loss, step=step)
    mlflow.log_artifact(path, artifact_path="notes")
print("RUN=" + run.info.run_id)
`, tracking, "MLFLOW_HTTP_REQUEST_MAX_RETRIES=2")
	run := depLine(t, out, "RUN=")

	// The artifact went to the destination, not to the project's folder.
	if got := filesNamed(t, dest, "hello.txt"); len(got) != 1 || !strings.HasPrefix(got[0], filepath.Join(dest, p.ID)+string(filepath.Separator)) {
		t.Fatalf("the artifact is at %v, want one file under %s", got, filepath.Join(dest, p.ID))
	}
	if p.Path != "" {
		if got := filesNamed(t, p.Path, "hello.txt"); len(got) != 0 {
			t.Errorf("the artifact is in the project's folder too: %v", got)
		}
	}

	killed := killNodeOf(t, s, c, p.ID)
	t.Logf("killed node %s; the project moved", killed)

	out = python(t, `import mlflow
c = mlflow.MlflowClient()
r = c.get_run("`+run+`")
print("PARAM=" + r.data.params["alpha"])
h = sorted(c.get_metric_history("`+run+`", "loss"), key=lambda m: m.step)
print("LOSS=" + ",".join(str(m.value) for m in h))
p = mlflow.artifacts.download_artifacts(run_id="`+run+`", artifact_path="notes/hello.txt")
print("ARTIFACT=" + open(p).read())
`, tracking, "MLFLOW_HTTP_REQUEST_MAX_RETRIES=2")
	for marker, want := range map[string]string{"PARAM=": "0.5", "LOSS=": "0.9,0.5,0.25", "ARTIFACT=": "kept-off-the-node"} {
		if got := depLine(t, out, marker); got != want {
			t.Errorf("after the node died, %s%s; want %s", marker, got, want)
		}
	}
	logRun(t, s.URL, name, "after-the-node-died")
	c.Restart(killed)

	// Delete: the job and its variable go.
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
	waitSleepy(t, s.URL, p.ID, "terminated", time.Minute)
	expect(t, at(t, s.URL, http.MethodDelete, "/projects/"+p.ID, nil), http.StatusOK)
	eventuallyNomad(t, "the deleted project's job and variable to be removed", func() bool {
		_, _, err := nc.Jobs().Info(jobName, nil)
		v, _, verr := nc.Variables().Peek(nomadrt.SecretPath(jobName), nil)
		return err != nil && strings.Contains(err.Error(), "404") && verr == nil && v == nil
	})
	assertSpec(t, s)
}

// filesNamed lists the files called name below root.
func filesNamed(t *testing.T, root, name string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() && d.Name() == name {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
