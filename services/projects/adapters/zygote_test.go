package adapters

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// A server forked from a new zygote takes the stock client's uploads
// through a reverse proxy (as the gateway's) right after its start: the
// example training script (a run, artifact folders, a logged and
// registered model) runs to its end and the server is still the same
// process afterwards. ZYGOTE_UPLOAD_ROUNDS repeats it with a new zygote
// each round (it is how the crash was hunted).
func TestZygoteServerSurvivesUploads(t *testing.T) {
	rounds := 1
	if v, err := strconv.Atoi(os.Getenv("ZYGOTE_UPLOAD_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	mlflow := conf.DefaultMlflow()
	python := filepath.Join(filepath.Dir(mlflow), "python")
	train, err := filepath.Abs(filepath.Join("..", "..", "..", "examples", "train.py"))
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= rounds; round++ {
		home, err := os.MkdirTemp("", "zyu")
		if err != nil {
			t.Fatal(err)
		}
		m := NewMLflowServers(mlflow, "127.0.0.1", 1, false)
		m.Zygote = NewZygote(mlflow, filepath.Join(home, "zygote.log"), 3*time.Minute)
		p := domain.Project{ID: "1", Name: "up", Path: filepath.Join(home, "p1")}
		p.InternalURL = sockhttp.URL(filepath.Join(home, "s", "1.sock"), PathPrefix(p))
		pr, err := m.Start(p)
		if err != nil {
			t.Fatal(err)
		}
		waitHealthy(t, m, p)
		target, _ := url.Parse(sockhttp.Target(p.InternalURL))
		target.Path = ""
		proxy := httputil.NewSingleHostReverseProxy(target)
		proxy.Transport = sockhttp.Transport(nil)
		front := httptest.NewServer(proxy)

		cmd := exec.Command(python, train, "--experiment", "uploads", "--model-name", "up-model", "--epochs", "2")
		cmd.Env = append(os.Environ(), "MLFLOW_TRACKING_URI="+front.URL+PathPrefix(p), "GIT_PYTHON_REFRESH=quiet",
			"MLFLOW_HTTP_REQUEST_MAX_RETRIES=0")
		out, runErr := cmd.CombinedOutput()
		alive := pr.Alive()
		front.Close()
		_ = pr.Stop(5 * time.Second)
		m.Zygote.Close()
		log, _ := os.ReadFile(m.LogFile(p))
		os.RemoveAll(home)
		if runErr != nil || !alive {
			t.Fatalf("round %d: the client %v, the server alive %v\nclient:\n%s\nserver log:\n%s", round, runErr, alive, lastLines(string(out), 30), lastLines(string(log), 60))
		}
		t.Logf("round %d: the training script uploaded through the proxy; server %d still serving", round, pr.Pid)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fork() copies one thread: the zygote must be that one thread when it
// forks, or a lock held elsewhere (malloc, a native pool) stays held in
// every server. MLflow's imports start two more (numpy's BLAS pool,
// pyarrow's jemalloc purger) unless the zygote's environment turns them
// off; without it the zygote refuses to serve, naming them.
func TestZygoteForksFromOneThread(t *testing.T) {
	home := t.TempDir()
	mlflow := conf.DefaultMlflow()
	z := NewZygote(mlflow, filepath.Join(home, "zygote.log"), 3*time.Minute)
	defer z.Close()
	if err := z.Warm(); err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(z.Pid()) + "/task")
	if err != nil || len(tasks) != 1 {
		t.Fatalf("the warm MLflow runs %d threads (%v), want 1", len(tasks), err)
	}

	bare := NewZygote(mlflow, filepath.Join(home, "bare.log"), 3*time.Minute)
	bare.Env = nil
	defer bare.Close()
	err = bare.Warm()
	if err == nil || !strings.Contains(err.Error(), "threads") || !strings.Contains(err.Error(), "MLPANEL_MLFLOW_PRELOAD=false") {
		t.Fatalf("a zygote whose imports start threads: %v, want a refusal naming them and the setting", err)
	}
}
