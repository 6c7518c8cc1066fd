package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A model server that goes down while its project is stopped waits for
// the project instead of counting crashes until it fails, and comes back
// by itself when the project runs again (issue 9, item 7).
func TestDeploymentWaitsForItsProject(t *testing.T) {
	f := depSetup(t)
	p := f.project
	d := createDeployment(t, map[string]any{"project_id": p.ID, "model_id": f.model, "type": "local"})
	d = waitDeployment(t, d.ID, "running", 4*time.Minute)
	want := depPredictions(t, d.ID, map[string]any{"data": irisRows})

	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
	defer func() { // the other deployer tests share the project
		if getProject(t, p.ID).Status != "running" {
			call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil)
			waitProject(t, p.ID, "running", 3*time.Minute)
		}
	}()
	waitProject(t, p.ID, "terminated", time.Minute)
	if err := syscall.Kill(-d.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing model server group %d: %v", d.Pid, err)
	}

	// Before, five start attempts (about 16 s) failed the deployment for
	// good. Now it waits, saying for what, as long as the project is down.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cur := getDeployment(t, d.ID)
		if strings.Contains(cur.Error, "waiting for project "+p.Name) {
			break
		}
		if cur.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("deployment %s (%q), want it waiting for project %s", cur.Status, cur.Error, p.Name)
		}
		time.Sleep(300 * time.Millisecond)
	}
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if cur := getDeployment(t, d.ID); cur.Status != "starting" {
			t.Fatalf("while its project is down the deployment is %s (%q), want starting", cur.Status, cur.Error)
		}
	}

	// The project runs again: the deployment follows without a user's run.
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	waitProject(t, p.ID, "running", 3*time.Minute)
	back := waitDeployment(t, d.ID, "running", 4*time.Minute)
	if back.Pid == d.Pid || back.Error != "" || back.RestartCount != d.RestartCount+1 {
		t.Fatalf("after the project came back: pid %d (was %d), error %q, restart_count %d (was %d); want a new server, no error, one restart",
			back.Pid, d.Pid, back.Error, back.RestartCount, d.RestartCount)
	}
	if got := depPredictions(t, d.ID, map[string]any{"data": irisRows}); !reflect.DeepEqual(got, want) {
		t.Errorf("after the project came back: predictions %v, want %v", got, want)
	}
}

// A project that has run before and whose mlflow.db is gone fails with a
// message that says so, instead of starting empty; with the database back
// it runs with its data (issue 9, item 9).
func TestVanishedDatabaseIsNotRecreated(t *testing.T) {
	p := runningProject(t, "vanished-db")
	r := mlflowAPI(t, p, http.MethodPost, "experiments/create", map[string]any{"name": "kept"})
	expect(t, r, http.StatusOK)
	var full struct {
		Path string `json:"path"`
	}
	call(t, http.MethodGet, "/projects/"+p.ID, nil).JSON(t, &full)
	db := filepath.Join(full.Path, "mlflow.db")

	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
	waitProject(t, p.ID, "terminated", time.Minute)
	if err := os.Rename(db, db+".aside"); err != nil {
		t.Fatal(err)
	}
	r = call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil)
	expect(t, r, http.StatusConflict)
	if !strings.Contains(r.Message(), db) || !strings.Contains(r.Message(), "has run before") {
		t.Fatalf("run without its database: %q, want a message naming %s", r.Message(), db)
	}
	got := getProject(t, p.ID)
	if got.Status != "failed" || !strings.Contains(got.LastError, "mlflow.db") {
		t.Fatalf("project %s (%q), want failed saying mlflow.db is missing", got.Status, got.LastError)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("an empty database was created at %s", db)
	}

	if err := os.Rename(db+".aside", db); err != nil {
		t.Fatal(err)
	}
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	p = waitProject(t, p.ID, "running", 3*time.Minute)
	r = mlflowAPI(t, p, http.MethodGet, "experiments/get-by-name?experiment_name=kept", nil)
	expect(t, r, http.StatusOK)
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
}
