package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// The shared panel's projects never sleep on their own: other tests
// check pids and restart counts across minutes of the suite. The sleep
// tests set a project's own idle timeout instead.
func init() {
	serviceConfigurers = append(serviceConfigurers, func(cfg *stack.Config, _ string) { cfg.Projects.IdleTimeout = 0 })
}

// sleepyProject is a project as the sleep tests read it.
type sleepyProject struct {
	project
	IdleTimeout string `json:"idleTimeout"`
	SleepReason string `json:"sleepReason"`
}

// at calls the panel at base (the shared one or a second one).
func at(t testing.TB, base, method, path string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

func waitSleepy(t testing.TB, base, id, status string, timeout time.Duration) sleepyProject {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var p sleepyProject
	for {
		r := at(t, base, http.MethodGet, "/projects/"+id, nil)
		expect(t, r, http.StatusOK)
		p = sleepyProject{} // absent fields (pid, sleepReason) are zero, not the last poll's
		r.JSON(t, &p)
		if p.Status == status {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("project %s is %s after %s, want %s (last error %q)", id, p.Status, timeout, status, p.LastError)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// projectEvents records the event types of one project.
func projectEvents(t *testing.T, nc *nats.Conn, id string) func() []string {
	var mu sync.Mutex
	var types []string
	sub, err := nc.Subscribe(events.SubjectPrefix+".project."+id+".>", func(m *nats.Msg) {
		ev, err := events.Decode(m.Data)
		if err != nil {
			return
		}
		mu.Lock()
		types = append(types, ev.Type[strings.LastIndex(ev.Type, ".")+1:])
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() []string {
		_ = nc.Flush()
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), types...)
	}
}

func count(list []string, v string) (n int) {
	for _, s := range list {
		if s == v {
			n++
		}
	}
	return n
}

// A project with a short idle timeout sleeps; the stock MLflow client,
// with retries off, logs a run through the gateway as if it never slept;
// two concurrent first requests start the server once.
func TestSleepAndWakeWithTheStockClient(t *testing.T) {
	bad := call(t, http.MethodPost, "/projects", map[string]string{"name": "sleepy-bad", "idleTimeout": "-3s"})
	expect(t, bad, http.StatusBadRequest)
	if !strings.Contains(bad.Message(), "between 1s and 720h") {
		t.Fatalf("a bad idle timeout answered %q, want the rule", bad.Message())
	}
	r := call(t, http.MethodPost, "/projects", map[string]string{"name": "sleepy", "idleTimeout": "4s"})
	expect(t, r, http.StatusCreated)
	var p sleepyProject
	r.JSON(t, &p)
	if p.IdleTimeout != "4s" {
		t.Fatalf("idleTimeout %q, want 4s", p.IdleTimeout)
	}
	upd := call(t, http.MethodPut, "/projects/"+p.ID, map[string]string{"idleTimeout": "soon"})
	expect(t, upd, http.StatusBadRequest)
	seen := projectEvents(t, panel.NC, p.ID)
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	waitSleepy(t, panel.URL, p.ID, "running", 3*time.Minute)
	asleep := waitSleepy(t, panel.URL, p.ID, "sleeping", time.Minute)
	if asleep.DesiredState != "running" || asleep.Pid != 0 || !strings.Contains(asleep.SleepReason, "idle") {
		t.Fatalf("asleep: %+v", asleep)
	}

	out := python(t, `import mlflow
mlflow.set_experiment("woken")
with mlflow.start_run() as run:
    mlflow.log_metric("loss", 0.25)
print(run.info.run_id)
`, "MLFLOW_TRACKING_URI="+panel.URL+"/projects/sleepy/mlflow",
		"MLFLOW_HTTP_REQUEST_MAX_RETRIES=0") // an error would not be hidden by a retry
	lines := strings.Split(strings.TrimSpace(out), "\n") // MLflow prints a "View run" line first
	runID := strings.TrimSpace(lines[len(lines)-1])
	got := call(t, http.MethodGet, "/runs/"+runID+"?project_id="+p.ID, nil)
	expect(t, got, http.StatusOK)

	// Asleep again: two requests at once wake it once.
	waitSleepy(t, panel.URL, p.ID, "sleeping", time.Minute)
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range statuses {
		wg.Go(func() {
			r := at(t, panel.URL, http.MethodGet, "/projects/sleepy/mlflow/api/2.0/mlflow/experiments/get-by-name?experiment_name=woken", nil)
			statuses[i] = r.Status
		})
	}
	wg.Wait()
	if statuses[0] != http.StatusOK || statuses[1] != http.StatusOK {
		t.Fatalf("concurrent first requests answered %v, want 200 200", statuses)
	}
	ev := seen()
	if count(ev, "waking") != 2 || count(ev, "sleeping") < 2 || count(ev, "starting") != 1 {
		t.Fatalf("events %v: want one starting (the run), two sleeping, and one waking per sleep", ev)
	}
	// Its stats are those of a real MLflow server that slept and woke.
	var st struct {
		Status        string  `json:"status"`
		Processes     int     `json:"processes"`
		PSSBytes      int64   `json:"pssBytes"`
		RSSBytes      int64   `json:"rssBytes"`
		CPUSeconds    float64 `json:"cpuSeconds"`
		LastRequestAt string  `json:"lastRequestAt"`
		Wakes         int     `json:"wakes"`
		AsleepSeconds float64 `json:"asleepSeconds"`
	}
	sr := call(t, http.MethodGet, "/projects/sleepy/stats", nil)
	expect(t, sr, http.StatusOK)
	sr.JSON(t, &st)
	t.Logf("awake project: %d processes, PSS %d MiB, RSS %d MiB, CPU %.1f s, %d wakes, %.1f s asleep",
		st.Processes, st.PSSBytes>>20, st.RSSBytes>>20, st.CPUSeconds, st.Wakes, st.AsleepSeconds)
	if st.Status != "running" || st.Processes < 1 || st.PSSBytes < 20<<20 || st.PSSBytes > st.RSSBytes || st.RSSBytes > 4<<30 ||
		st.CPUSeconds <= 0 || st.LastRequestAt == "" || st.Wakes != 2 || st.AsleepSeconds <= 0 {
		t.Fatalf("stats of a running MLflow server woken twice: %+v", st)
	}
	all := call(t, http.MethodGet, "/stats", nil)
	expect(t, all, http.StatusOK)
	if !strings.Contains(string(all.Body), `"name":"sleepy"`) {
		t.Fatalf("GET /stats lacks the project: %s", all.Body)
	}
	metrics := call(t, http.MethodGet, "/metrics", nil)
	if !strings.Contains(string(metrics.Body), `mlpanel_project_pss_bytes{name="sleepy",project="`+p.ID+`"}`) {
		t.Fatal("/metrics has no PSS gauge for the project")
	}

	// The tracking API wakes it too.
	waitSleepy(t, panel.URL, p.ID, "sleeping", time.Minute)
	expect(t, call(t, http.MethodGet, "/runs/"+runID+"?project_id="+p.ID, nil), http.StatusOK)
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
}

// A project in use through its mlflowUri (auth off: the address the API
// gives, not one the test builds) never sleeps, however long the use
// lasts; one left alone beside it does; the used one sleeps once its
// client is done.
func TestProjectInUseThroughMlflowURINeverSleeps(t *testing.T) {
	ids := map[string]string{}
	for _, name := range []string{"inuse", "alone"} {
		r := call(t, http.MethodPost, "/projects", map[string]string{"name": name, "idleTimeout": "6s"})
		expect(t, r, http.StatusCreated)
		var p sleepyProject
		r.JSON(t, &p)
		ids[name] = p.ID
		expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
		t.Cleanup(func() { call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil) })
	}
	inuse := waitSleepy(t, panel.URL, ids["inuse"], "running", 3*time.Minute)
	waitSleepy(t, panel.URL, ids["alone"], "running", 3*time.Minute)
	if !strings.HasPrefix(inuse.MlflowURI, panel.URL+"/") {
		t.Fatalf("mlflowUri %q is not the gateway's proxy %s", inuse.MlflowURI, panel.URL)
	}

	// The stock client logs for 15 s, 2.5 idle timeouts, a metric a second.
	// Python's imports take seconds, so the project may sleep before the
	// first request (and wake on it); the marker file says the use began.
	began := filepath.Join(t.TempDir(), "began")
	done := make(chan string, 1)
	go func() {
		out, err := pythonMayFail(`import os, time, mlflow
mlflow.set_experiment("busy")
open(os.environ["E2E_MARKER"], "w").close()
with mlflow.start_run() as run:
    for i in range(15):
        mlflow.log_metric("step", i, step=i)
        time.sleep(1)
print("RUN=" + run.info.run_id)
`, "MLFLOW_TRACKING_URI="+inuse.MlflowURI, "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0", "E2E_MARKER="+began)
		if err != nil {
			out += err.Error()
		}
		done <- out
	}()
	var out string
	for out == "" {
		if _, err := os.Stat(began); err == nil {
			break
		}
		select {
		case out = <-done:
			t.Fatalf("the client ended before it began logging: %s", out)
		case <-time.After(100 * time.Millisecond):
		}
	}
	inuse = waitSleepy(t, panel.URL, ids["inuse"], "running", 0)
	aloneSlept := false
	for out == "" {
		select {
		case out = <-done:
		case <-time.After(300 * time.Millisecond):
		}
		p := waitSleepy(t, panel.URL, ids["inuse"], "running", 0)
		if p.Pid != inuse.Pid {
			t.Fatalf("the project in use restarted (pid %d, then %d)", inuse.Pid, p.Pid)
		}
		var alone sleepyProject
		call(t, http.MethodGet, "/projects/"+ids["alone"], nil).JSON(t, &alone)
		aloneSlept = aloneSlept || alone.Status == "sleeping"
	}
	runID := depLine(t, out, "RUN=")
	if !aloneSlept {
		t.Fatal("the project left alone did not sleep while the other was in use")
	}
	var hist struct {
		Metrics []any `json:"metrics"`
	}
	h := call(t, http.MethodGet, "/projects/inuse/mlflow/api/2.0/mlflow/metrics/get-history?metric_key=step&run_id="+runID, nil)
	expect(t, h, http.StatusOK)
	h.JSON(t, &hist)
	if len(hist.Metrics) != 15 {
		t.Fatalf("%d of 15 metrics logged", len(hist.Metrics))
	}
	waitSleepy(t, panel.URL, ids["inuse"], "sleeping", time.Minute)
}

// With MLPANEL_MAX_AWAKE=1, starting or waking a second project puts the
// least recently used idle one to sleep, and its event says why.
func TestMaxAwakeOne(t *testing.T) {
	cfg := panelCfg
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.Ports = proc.Range{Lo: 15151, Hi: 15155}
	cfg.Projects.StopOnExit = true
	cfg.Projects.MaxAwake = 1
	cfg.Projects.IdleTimeout = 0
	cfg.Gateway.Addr = "127.0.0.1:0"
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); assertSpec(t, s) })

	ids := map[string]string{}
	for _, name := range []string{"first", "second"} {
		r := at(t, s.URL, http.MethodPost, "/projects", map[string]string{"name": name})
		expect(t, r, http.StatusCreated)
		var p sleepyProject
		r.JSON(t, &p)
		ids[name] = p.ID
	}
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+ids["first"]+"/run", nil), http.StatusOK)
	waitSleepy(t, s.URL, ids["first"], "running", 3*time.Minute)
	time.Sleep(6 * time.Second) // "first" becomes idle (no request for two activity reports)
	expect(t, at(t, s.URL, http.MethodPut, "/projects/"+ids["second"]+"/run", nil), http.StatusOK)
	first := waitSleepy(t, s.URL, ids["first"], "sleeping", 30*time.Second)
	if !strings.Contains(first.SleepReason, "MLPANEL_MAX_AWAKE") || !strings.Contains(first.SleepReason, "second") {
		t.Fatalf("first sleeps because %q, want the MAX_AWAKE reason naming second", first.SleepReason)
	}
	waitSleepy(t, s.URL, ids["second"], "running", 3*time.Minute)
	time.Sleep(6 * time.Second)

	// A request to the sleeping one wakes it and puts the other to sleep.
	r := at(t, s.URL, http.MethodGet, "/projects/first/mlflow/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default", nil)
	expect(t, r, http.StatusOK)
	second := waitSleepy(t, s.URL, ids["second"], "sleeping", 30*time.Second)
	if !strings.Contains(second.SleepReason, "first") {
		t.Fatalf("second sleeps because %q, want waking first named", second.SleepReason)
	}
	for _, id := range ids {
		expect(t, at(t, s.URL, http.MethodPut, "/projects/"+id+"/terminate", nil), http.StatusOK)
	}
}
