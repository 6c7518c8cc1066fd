package adapters

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// The zygote relies on how MLflow starts its server (zygote.py,
// check_mlflow and _run_in_process): this fails when a future MLflow
// changes that. Forked servers are real `mlflow server`s with their own
// database, prefix and process group; one's crash, or the zygote's end,
// leaves the others serving, and they can be adopted by pid.
func TestZygoteForksRealMlflowServers(t *testing.T) {
	home, err := os.MkdirTemp("", "zyg") // short: socket paths are bounded
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	mlflow := conf.DefaultMlflow()
	m := NewMLflowServers(mlflow, "127.0.0.1", 1, false)
	m.Zygote = NewZygote(mlflow, filepath.Join(home, "zygote.log"), 3*time.Minute)
	defer m.Zygote.Close()
	if err := m.Zygote.Warm(); err != nil {
		t.Fatal(err)
	}
	project := func(id string) domain.Project {
		p := domain.Project{ID: id, Name: "p" + id, Path: filepath.Join(home, "p"+id)}
		p.InternalURL = sockhttp.URL(filepath.Join(home, "s", id+".sock"), PathPrefix(p))
		return p
	}
	var procs []*proc.Process
	defer func() {
		for _, pr := range procs {
			_ = pr.Stop(5 * time.Second)
		}
	}()
	start := func(p domain.Project) *proc.Process {
		t.Helper()
		pr, err := m.Start(p)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, pr)
		waitHealthy(t, m, p)
		return pr
	}
	a, b := project("1"), project("2")
	pa, pb := start(a), start(b)

	client := &http.Client{Transport: sockhttp.Transport(nil), Timeout: 10 * time.Second}
	get := func(p domain.Project, path string) (int, string) {
		t.Helper()
		resp, err := client.Get(sockhttp.Target(p.InternalURL) + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// MLflow's REST API and UI under the project's prefix, on its own database.
	if code, body := get(a, "/api/2.0/mlflow/experiments/search?max_results=5"); code != 200 || !strings.Contains(body, "Default") {
		t.Fatalf("experiments/search: %d %s", code, body)
	}
	if code, body := get(a, "/"); code != 200 || !strings.Contains(body, "<html") {
		t.Fatalf("the MLflow UI: %d %.200s", code, body)
	}
	if _, err := os.Stat(filepath.Join(a.Path, "mlflow.db")); err != nil {
		t.Fatalf("the server did not use the project's database: %v", err)
	}
	for _, pr := range []*proc.Process{pa, pb} {
		if pgid, _ := syscall.Getpgid(pr.Pid); pgid != pr.Pid {
			t.Fatalf("server %d is in process group %d, want its own", pr.Pid, pgid)
		}
	}

	// A crash of one server leaves the other serving.
	_ = syscall.Kill(-pa.Pid, syscall.SIGKILL)
	select {
	case <-pa.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a killed server still counts as alive")
	}
	if code, _ := get(b, "/health"); code != 200 {
		t.Fatalf("the other server after a crash: %d", code)
	}

	// The zygote's end (a panel restart) leaves servers running and adoptable.
	pid := m.Zygote.Pid()
	m.Zygote.Close()
	if syscall.Kill(pid, 0) == nil {
		t.Fatal("the zygote survived Close")
	}
	if code, _ := get(b, "/health"); code != 200 {
		t.Fatalf("a server after the zygote ended: %d", code)
	}
	if _, ok := proc.Adopt(pb.Pid, pb.StartTime); !ok {
		t.Fatal("a forked server cannot be adopted by pid and start time")
	}
	// The next start brings a new zygote.
	start(a)
	if code, body := get(a, "/api/2.0/mlflow/experiments/search?max_results=5"); code != 200 {
		t.Fatalf("after a new zygote: %d %s", code, body)
	}
	log, _ := os.ReadFile(m.LogFile(a))
	if !strings.Contains(string(log), "forked from the MLflow zygote") || !strings.Contains(string(log), "Uvicorn running") {
		t.Fatalf("the project's log lacks the server's output:\n%s", log)
	}
}

func waitHealthy(t *testing.T, m *MLflowServers, p domain.Project) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !m.Healthy(context.Background(), p) {
		if time.Now().After(deadline) {
			tail, _ := proc.Tail(m.LogFile(p), 30)
			t.Fatalf("project %s did not answer /health:\n%s", p.ID, tail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
