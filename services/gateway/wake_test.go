package gateway

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// sleepyProjects answers projects.get with status (and addr) and
// projects.wake by waking: from then on the project runs at live.
type sleepyProjects struct {
	mu      sync.Mutex
	status  string
	addr    string // where get says the server is
	live    string // where it is once woken
	wakes   atomic.Int32
	failing bool
}

func (f *sleepyProjects) info() map[string]string {
	return map[string]string{"id": "1", "name": "churn", "status": f.status, "internalUrl": "http://" + f.addr + "/projects/1/mlflow"}
}

func startSleepyProjects(t *testing.T, nc *nats.Conn, f *sleepyProjects) {
	t.Helper()
	sub, err := nc.Subscribe("mlpanel.projects.>", func(m *nats.Msg) {
		out := nats.NewMsg(m.Reply)
		f.mu.Lock()
		switch strings.TrimPrefix(m.Subject, "mlpanel.projects.") {
		case "get":
			out.Data, _ = json.Marshal(f.info())
		case "wake":
			f.wakes.Add(1)
			if f.failing {
				out.Header.Set(micro.ErrorCodeHeader, "503")
				out.Header.Set(micro.ErrorHeader, "project churn did not start: boom; last log lines:\nTraceback")
				break
			}
			f.status, f.addr = "running", f.live
			out.Data, _ = json.Marshal(f.info())
		case "activity":
			out.Data = []byte("{}")
		}
		f.mu.Unlock()
		_ = m.RespondMsg(out)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// mlflowEcho stands in for a tracking server: it answers with the body
// it received.
func mlflowEcho(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(append([]byte(r.URL.Path+" "), b...))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// through serves one request with a real server: the proxy needs a real
// connection under it.
func through(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRequestToASleepingProjectWakesItAndIsServed(t *testing.T) {
	nc := startNATS(t)
	f := &sleepyProjects{status: "sleeping", addr: closedAddr(t), live: mlflowEcho(t)}
	startSleepyProjects(t, nc, f)
	_, h, _ := testGateway(t, Config{}, nc, nil)
	code, body := through(t, h, http.MethodPost, "/projects/churn/mlflow/api/2.0/mlflow/runs/create", `{"experiment_id":"0"}`)
	if code != http.StatusOK || body != `/projects/1/mlflow/api/2.0/mlflow/runs/create {"experiment_id":"0"}` {
		t.Fatalf("request to a sleeping project: %d %s", code, body)
	}
	if f.wakes.Load() != 1 {
		t.Fatalf("%d wakes, want 1", f.wakes.Load())
	}
}

// The project went to sleep between the lookup (it said running) and the
// call: the refused connection wakes it and the request, body and all,
// is sent again.
func TestRequestRacingASleepIsSentAgainAfterTheWake(t *testing.T) {
	nc := startNATS(t)
	f := &sleepyProjects{status: "running", addr: closedAddr(t), live: mlflowEcho(t)}
	startSleepyProjects(t, nc, f)
	_, h, _ := testGateway(t, Config{}, nc, nil)
	code, body := through(t, h, http.MethodPost, "/projects/churn/mlflow/api/2.0/mlflow/runs/log-metric", `{"key":"loss"}`)
	if code != http.StatusOK || !strings.HasSuffix(body, ` {"key":"loss"}`) || f.wakes.Load() != 1 {
		t.Fatalf("request racing a sleep: %d %q after %d wakes", code, body, f.wakes.Load())
	}
}

func TestFailedWakeAnswers503WithTheLogTail(t *testing.T) {
	nc := startNATS(t)
	f := &sleepyProjects{status: "sleeping", addr: closedAddr(t), failing: true}
	startSleepyProjects(t, nc, f)
	_, h, _ := testGateway(t, Config{}, nc, nil)
	code, body := through(t, h, http.MethodGet, "/projects/churn/mlflow/api/2.0/mlflow/experiments/search", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "Traceback") {
		t.Fatalf("failed wake: %d %s, want 503 with the log tail", code, body)
	}
}

// A search through the proxy that the gateway refuses for its filter is
// refused without waking the sleeping project it names.
func TestRefusedSearchLeavesASleepingProjectAsleep(t *testing.T) {
	nc := startNATS(t)
	f := &sleepyProjects{status: "sleeping", addr: closedAddr(t), live: mlflowEcho(t)}
	startSleepyProjects(t, nc, f)
	_, h, _ := testGateway(t, Config{}, nc, nil)
	heavy := strings.TrimSuffix(strings.Repeat("metrics.m > 0 AND ", 1000), " AND ")
	code, body := through(t, h, http.MethodPost, "/projects/churn/mlflow/api/2.0/mlflow/runs/search", `{"experiment_ids":["1"],"filter":"`+heavy+`"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "1000 clauses") || !strings.Contains(body, "INVALID_PARAMETER_VALUE") {
		t.Fatalf("a search over the filter bounds: %d %s, want MLflow's 400 stating the bounds", code, body)
	}
	if n := f.wakes.Load(); n != 0 {
		t.Fatalf("the refused search woke the project %d times", n)
	}
	// One within the bounds needs the server: it wakes it.
	code, _ = through(t, h, http.MethodPost, "/projects/churn/mlflow/api/2.0/mlflow/runs/search", `{"experiment_ids":["1"],"filter":"metrics.m > 0"}`)
	if code != http.StatusOK || f.wakes.Load() != 1 {
		t.Fatalf("a search within the bounds: %d after %d wakes, want 200 after one", code, f.wakes.Load())
	}
}
