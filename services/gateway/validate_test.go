package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// fakeProjects answers the projects service's subjects with what a test
// sets, and remembers the last request it got.
type fakeProjects struct {
	mu      sync.Mutex
	replies map[string]fakeReply
	last    events.Request
}

type fakeReply struct {
	status int // 0: success
	body   any
}

func newFakeProjects(t *testing.T, nc *nats.Conn) *fakeProjects {
	t.Helper()
	f := &fakeProjects{replies: map[string]fakeReply{}}
	sub, err := nc.Subscribe("mlpanel.projects.>", func(m *nats.Msg) {
		op := strings.TrimPrefix(m.Subject, "mlpanel.projects.")
		f.mu.Lock()
		_ = json.Unmarshal(m.Data, &f.last)
		r, ok := f.replies[op]
		f.mu.Unlock()
		out := nats.NewMsg(m.Reply)
		switch {
		case !ok:
			out.Header.Set(micro.ErrorCodeHeader, "404")
			out.Header.Set(micro.ErrorHeader, "project not found: list projects with GET /projects")
		case r.status != 0:
			out.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(r.status))
			out.Header.Set(micro.ErrorHeader, "refused by the fake")
		default:
			out.Data, _ = json.Marshal(r.body)
		}
		_ = m.RespondMsg(out)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return f
}

func (f *fakeProjects) set(op string, r fakeReply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies[op] = r
}

func (f *fakeProjects) lastBody() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return string(f.last.Body)
}

func validProject() map[string]any {
	return map[string]any{
		"id": "1", "name": "churn", "description": "", "status": "terminated", "desiredState": "stopped",
		"port": 5000, "mlflowUri": "http://127.0.0.1:5000", "internalUrl": "http://127.0.0.1:5000",
		"path": "/data/projects/1", "createdAt": "2026-11-27T05:00:00Z", "updatedAt": "2026-11-27T05:00:00Z",
		"restartCount": 0,
	}
}

func specGateway(t *testing.T, check bool) (*Gateway, *gin.Engine, *fakeProjects) {
	t.Helper()
	nc := startNATS(t)
	f := newFakeProjects(t, nc)
	g, e, _ := testGateway(t, Config{SpecCheck: check}, nc, nil)
	return g, e, f
}

func TestSpecCheckPassesGoodTraffic(t *testing.T) {
	g, e, f := specGateway(t, true)
	f.set("list", fakeReply{body: map[string]any{"items": []any{validProject()}, "total": 7}})
	f.set("get", fakeReply{body: validProject()})
	f.set("create", fakeReply{body: validProject()})
	f.set("update", fakeReply{body: validProject()})
	f.set("logs", fakeReply{body: map[string]any{"id": "1", "lines": 0, "log": ""}})
	f.set("run", fakeReply{status: http.StatusConflict})

	for _, c := range []struct {
		method, path, body, ct string
		want                   int
	}{
		{"GET", "/projects?_start=0&_end=10&_sort=name&_order=desc&status=running", "", "", 200},
		{"GET", "/projects/churn", "", "", 200},
		{"POST", "/projects", `{"name": "churn", "description": "d"}`, "application/json", 201},
		{"POST", "/projects", `name=churn&description=d`, "application/x-www-form-urlencoded", 201},
		// curl -d with JSON: the gateway reads it as JSON, so must the check.
		{"POST", "/projects", `{"name": "churn"}`, "application/x-www-form-urlencoded", 201},
		{"POST", "/projects", `{"name": "churn"}`, "text/plain", 201},
		{"PUT", "/projects/1", `{"description": "new"}`, "application/json", 200},
		{"GET", "/projects/1/logs?lines=10", "", "", 200},
		// Refusals the document describes are fine, bad input included.
		{"PUT", "/projects/1/run", "", "", 409},
		{"GET", "/projects/2/ping", "", "", 404},
		{"POST", "/projects", `{"name": "9starts-with-a-digit"}`, "application/json", 400},
		{"GET", "/healthz", "", "", 200},
		{"GET", "/readyz", "", "", 503},
		{"GET", "/openapi.json", "", "", 200},
		{"GET", "/openapi.yaml", "", "", 200},
		{"GET", "/docs", "", "", 200},
		{"GET", "/docs/swagger-ui.css", "", "", 200},
		{"GET", "/metrics", "", "", 200},
		{"GET", "/no/such/route", "", "", 404},
	} {
		if c.path == "/projects" && strings.Contains(c.body, "9starts") {
			f.set("create", fakeReply{status: http.StatusBadRequest})
		}
		var hdr []string
		if c.ct != "" {
			hdr = []string{"Content-Type", c.ct}
		}
		w := serve(e, c.method, c.path, strings.NewReader(c.body), hdr...)
		if w.Code != c.want {
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.path, w.Code, c.want, w.Body)
		}
	}
	if v := g.SpecViolations(); len(v) > 0 {
		t.Errorf("violations on good traffic:\n%s", strings.Join(v, "\n"))
	}
	// The handler saw the whole body after the check had read it.
	serve(e, "PUT", "/projects/1", strings.NewReader(`{"description": "seen by the handler"}`), "Content-Type", "application/json")
	if !strings.Contains(f.lastBody(), "seen by the handler") {
		t.Errorf("the service got body %q", f.lastBody())
	}
}

func TestSpecCheckRecordsViolations(t *testing.T) {
	g, e, f := specGateway(t, true)
	e.GET("/undocumented", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{}) })

	bad := validProject()
	delete(bad, "mlflowUri")
	bad["port"] = "5000"
	f.set("get", fakeReply{body: bad})
	f.set("create", fakeReply{body: validProject()})
	f.set("list", fakeReply{body: map[string]any{"items": []any{validProject()}, "total": 1}})
	f.set("terminate", fakeReply{status: http.StatusTeapot})

	serve(e, "GET", "/projects/1", nil)
	// The gateway accepted a name the document forbids.
	serve(e, "POST", "/projects", strings.NewReader(`{"name": "has space"}`), "Content-Type", "application/json")
	serve(e, "PUT", "/projects/1/terminate", nil)
	serve(e, "GET", "/undocumented", nil)
	serve(e, "GET", "/projects?_order=sideways", nil) // refused by the gateway: not a violation

	v := g.SpecViolations()
	want := []string{
		"GET /projects/1 (route /projects/:id) -> 200: response does not match the document",
		"POST /projects (route /projects) -> 201: request accepted although it does not match the document",
		"PUT /projects/1/terminate (route /projects/:id/terminate) -> 418: response does not match the document",
		"GET /undocumented (route /undocumented) -> 200: the document has no operation GET /undocumented",
	}
	if len(v) != len(want) {
		t.Fatalf("%d violations, want %d:\n%s", len(v), len(want), strings.Join(v, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(v[i], w) {
			t.Errorf("violation %d:\n  %s\nwant prefix\n  %s", i, v[i], w)
		}
	}
	for _, detail := range []string{"mlflowUri", "port"} {
		if !strings.Contains(v[0], detail) {
			t.Errorf("violation does not say what failed (%s): %s", detail, v[0])
		}
	}
}

func TestSpecCheckOff(t *testing.T) {
	g, e, _ := specGateway(t, false)
	e.GET("/undocumented", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{}) })
	serve(e, "GET", "/undocumented", nil)
	if v := g.SpecViolations(); len(v) > 0 {
		t.Errorf("violations with the check off: %v", v)
	}
}

func TestOpenAPIPath(t *testing.T) {
	for in, want := range map[string]string{
		"/projects/:id":              "/projects/{id}",
		"/runs/:id/metrics/*key":     "/runs/{id}/metrics/{key}",
		"/projects/:id/mlflow/*path": "/projects/{id}/mlflow/{path}",
		"/healthz":                   "/healthz",
	} {
		if got := openAPIPath(in); got != want {
			t.Errorf("openAPIPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSpecRecorderIsBounded(t *testing.T) {
	r := &specRecorder{}
	for i := 0; i < maxViolations+5; i++ {
		r.add(strings.Repeat("x", maxViolationText+10))
	}
	v := r.snapshot()
	if len(v) != maxViolations+1 || v[maxViolations] != "… and 5 more" || len(v[0]) > maxViolationText+len("…") {
		t.Errorf("%d entries, last %q, first %d long", len(v), v[len(v)-1], len(v[0]))
	}
}

// The root of a catch-all (/projects/1/mlflow/) still fills {path}.
func TestSpecCheckCatchAllRoot(t *testing.T) {
	mlflow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(RequestIDHeader) == "" {
			t.Error("the proxied call lacks the request ID")
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>MLflow</html>"))
	}))
	t.Cleanup(mlflow.Close)
	g, e, f := specGateway(t, true)
	p := validProject()
	p["status"], p["internalUrl"], p["mlflowUri"] = "running", mlflow.URL, mlflow.URL
	f.set("get", fakeReply{body: p})
	// A real server: the reverse proxy needs a real connection.
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/projects/1/mlflow/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("proxy answered %d", resp.StatusCode)
	}
	if v := g.SpecViolations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
}

// The check is safe for concurrent requests (run with -race).
func TestSpecCheckConcurrent(t *testing.T) {
	g, e, f := specGateway(t, true)
	f.set("list", fakeReply{body: map[string]any{"items": []any{validProject()}, "total": 1}})
	f.set("create", fakeReply{body: validProject()})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(e, "GET", "/projects?_sort=name", nil)
			serve(e, "POST", "/projects", strings.NewReader(`name=churn`), "Content-Type", "application/x-www-form-urlencoded")
		}()
	}
	wg.Wait()
	if v := g.SpecViolations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
}
