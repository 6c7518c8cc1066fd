package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// syncBuffer is a log sink that handlers on many goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines decodes the JSON log lines written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// testGateway builds a gateway that logs JSON at debug level into logs.
func testGateway(t testing.TB, cfg Config, nc *nats.Conn, db *mongo.Database) (*Gateway, *gin.Engine, *syncBuffer) {
	t.Helper()
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	logs := &syncBuffer{}
	g := New(cfg, nc, db, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return g, g.Handler().(*gin.Engine), logs
}

// startNATS runs an in-process NATS server for one test and connects.
func startNATS(t testing.TB) *nats.Conn {
	t.Helper()
	// JetStream on: the gateway keeps its audit queue there.
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func serve(h http.Handler, method, path string, body io.Reader, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, body)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestIDHonouredOrMade(t *testing.T) {
	_, e, _ := testGateway(t, Config{}, nil, nil)

	w := serve(e, http.MethodGet, "/healthz", nil, RequestIDHeader, "abc-123.from_proxy")
	if got := w.Header().Get(RequestIDHeader); got != "abc-123.from_proxy" {
		t.Errorf("incoming ID not honoured: %q", got)
	}
	w = serve(e, http.MethodGet, "/healthz", nil)
	if got := w.Header().Get(RequestIDHeader); !hexID.MatchString(got) {
		t.Errorf("made ID %q, want 32 hex digits", got)
	}
	for _, bad := range []string{"has space", "new\nline", strings.Repeat("x", 129), "ünïcode"} {
		w = serve(e, http.MethodGet, "/healthz", nil, RequestIDHeader, bad)
		if got := w.Header().Get(RequestIDHeader); !hexID.MatchString(got) {
			t.Errorf("ID %q was kept as %q; want a fresh one", bad, got)
		}
	}
	// Unknown routes get one too (NoRoute runs the global middleware).
	w = serve(e, http.MethodGet, "/nope", nil)
	if w.Code != http.StatusNotFound || !hexID.MatchString(w.Header().Get(RequestIDHeader)) {
		t.Errorf("/nope: %d, ID %q", w.Code, w.Header().Get(RequestIDHeader))
	}
}

// TestRequestIDReachesServices: the id a call is answered with travels in
// a NATS header to the service, whose log line for the call carries it,
// for a given id and for one the gateway made.
func TestRequestIDReachesServices(t *testing.T) {
	nc := startNATS(t)
	svcLog := &syncBuffer{}
	seen := make(chan string, 4)
	ms, err := events.AddService(nc, "projects", "0.0.0", "stand-in", 5*time.Second, map[string]events.Operation{
		"get": func(ctx context.Context, r events.Request) (any, error) {
			seen <- events.RequestID(ctx)
			return projectInfo{ID: "1", Name: r.Param("id"), Status: "running"}, nil
		},
	}, events.WithLog(slog.New(slog.NewJSONHandler(svcLog, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })
	_, e, _ := testGateway(t, Config{}, nc, nil)

	for _, given := range []string{"trace-42", ""} {
		svcLog.Reset()
		var header []string
		if given != "" {
			header = []string{RequestIDHeader, given}
		}
		w := serve(e, http.MethodGet, "/projects/p1", nil, header...)
		id := w.Header().Get(RequestIDHeader)
		if w.Code != http.StatusOK || id == "" || (given != "" && id != given) {
			t.Fatalf("given %q: %d, answered with id %q: %s", given, w.Code, id, w.Body)
		}
		if got := <-seen; got != id {
			t.Errorf("the service's context has request id %q, the answer %q", got, id)
		}
		var found bool
		for _, l := range svcLog.lines(t) {
			if l["msg"] == "nats request" && l["request_id"] == id && l["subject"] == "mlpanel.projects.get" {
				found = true
			}
		}
		if !found {
			t.Errorf("no service log line carries request_id %q:\n%s", id, svcLog.String())
		}
	}
}

// Every line logged for a request, by handlers and by the access log,
// carries its request ID.
func TestRequestScopedLogger(t *testing.T) {
	g, e, logs := testGateway(t, Config{}, nil, nil)
	e.GET("/test/log", func(c *gin.Context) {
		if id := c.GetString(requestIDKey); id == "" || events.RequestID(c) != id || events.RequestID(c.Request.Context()) != id {
			t.Errorf("request ID missing from gin or request context: %q, %q", id, events.RequestID(c.Request.Context()))
		}
		g.logFor(c).Info("inside the handler")
		c.String(http.StatusTeapot, "ok")
	})
	logs.Reset() // only this request's lines
	w := serve(e, http.MethodGet, "/test/log?x=1", nil, RequestIDHeader, "req-42")
	if w.Code != http.StatusTeapot {
		t.Fatalf("status %d", w.Code)
	}
	var sawHandler, sawAccess bool
	for _, l := range logs.lines(t) {
		if l["request_id"] != "req-42" {
			t.Errorf("log line without the request ID: %v", l)
		}
		switch l["msg"] {
		case "inside the handler":
			sawHandler = true
		case "http request":
			sawAccess = true
			if l["route"] != "/test/log" || l["path"] != "/test/log" || l["status"] != float64(418) || l["method"] != "GET" {
				t.Errorf("access log line: %v", l)
			}
			if _, ok := l["duration"]; !ok {
				t.Errorf("access log without duration: %v", l)
			}
		}
	}
	if !sawHandler || !sawAccess {
		t.Errorf("handler line %v, access line %v in:\n%s", sawHandler, sawAccess, logs.String())
	}
}

func TestMetrics(t *testing.T) {
	g, e, _ := testGateway(t, Config{}, nil, nil)
	serve(e, http.MethodGet, "/healthz", nil)
	serve(e, http.MethodGet, "/healthz", nil)
	serve(e, http.MethodGet, "/no/such/thing/42", nil)
	w := serve(e, http.MethodGet, "/metrics", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q", ct)
	}
	body := w.Body.String()
	for _, want := range []string{
		`mlpanel_http_requests_total{method="GET",route="/healthz",status="200"} 2`,
		// Unknown paths share one label value, so scanners cannot blow up the series count.
		`mlpanel_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`mlpanel_http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.005"}`,
		`mlpanel_http_request_duration_seconds_count{method="GET",route="/healthz"} 2`,
		"mlpanel_http_requests_in_flight 1", // the scrape itself
		"go_goroutines",
		"process_start_time_seconds",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "/no/such/thing") {
		t.Error("a raw path became a label value")
	}
	// A second Handler() (Serve builds one) shares the registry rather than
	// registering the collectors twice.
	e2 := g.Handler()
	if w := serve(e2, http.MethodGet, "/metrics", nil); !strings.Contains(w.Body.String(), `route="/healthz",status="200"} 2`) {
		t.Errorf("second handler has its own counters:\n%s", w.Body)
	}
}

func TestReadyz(t *testing.T) {
	t.Run("nothing configured", func(t *testing.T) {
		_, e, _ := testGateway(t, Config{}, nil, nil)
		w := serve(e, http.MethodGet, "/readyz", nil)
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d", w.Code)
		}
		var body struct {
			Code    string            `json:"code"`
			Message string            `json:"message"`
			Checks  map[string]string `json:"checks"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if body.Code != "503" || !strings.Contains(body.Message, "nats") || !strings.Contains(body.Message, "mongodb") {
			t.Errorf("body %+v", body)
		}
	})
	t.Run("NATS up, MongoDB unreachable", func(t *testing.T) {
		nc := startNATS(t)
		// A port nothing listens on: connection refused at once.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		client, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + addr).SetServerSelectionTimeout(300 * time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Disconnect(t.Context()) })
		_, e, _ := testGateway(t, Config{}, nc, client.Database("mlpanel"))
		start := time.Now()
		w := serve(e, http.MethodGet, "/readyz", nil)
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if elapsed := time.Since(start); elapsed > readyTimeout+time.Second {
			t.Errorf("readyz took %s", elapsed)
		}
		msg := w.Body.String()
		if !strings.Contains(msg, "mongodb: ping") || strings.Contains(msg, "nats:") {
			t.Errorf("want only MongoDB named: %s", msg)
		}
		var body struct {
			Checks map[string]string `json:"checks"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if body.Checks["nats"] != "ok" {
			t.Errorf("checks %v", body.Checks)
		}
	})
	t.Run("NATS down", func(t *testing.T) {
		nc := startNATS(t)
		nc.Close()
		g := &Gateway{nc: nc}
		if err := g.natsReady(); err == nil || !strings.Contains(err.Error(), "CLOSED") {
			t.Errorf("natsReady on a closed connection: %v", err)
		}
	})
}

func TestStreamRoutes(t *testing.T) {
	g := New(Config{MaxBody: 1 << 20}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	table := newRouteTable(g.routes())
	for r, want := range map[routeKey]bool{
		{"POST", "/deployments/:id/predict"}:   true,
		{"GET", "/artifacts/content"}:          true,
		{"HEAD", "/artifacts/content"}:         true,
		{"POST", "/projects/:id/mlflow/*path"}: true,
		{"GET", "/projects/:id/export"}:        true,
		{"POST", "/projects/import"}:           true,
		{"GET", "/events"}:                     true,
		{"GET", "/projects/:id"}:               false,
		{"GET", "/projects/:id/logs"}:          false,
		{"GET", "/artifacts"}:                  false,
		{"POST", "/projects"}:                  false,
	} {
		row, ok := table[r]
		if !ok {
			t.Errorf("%s %s is not in the route table", r.method, r.path)
		} else if row.stream != want {
			t.Errorf("%s %s: stream = %v", r.method, r.path, row.stream)
		}
	}
}

// A control-plane client that trickles its body is cut off after the
// call's deadline plus bodyGrace; the server itself has no ReadTimeout.
func TestControlPlaneDeadline(t *testing.T) {
	old := bodyGrace
	bodyGrace = 200 * time.Millisecond
	t.Cleanup(func() { bodyGrace = old })
	_, e, _ := testGateway(t, Config{RequestTimeout: 300 * time.Millisecond}, nil, nil)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Announce 100 bytes, send 2, then stall.
	fmt.Fprintf(conn, "POST /projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"")
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		// The handler gave up reading the body and answered; fine too, as
		// long as it did so by the deadline.
		resp.Body.Close()
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("stalled body held the connection for %s", elapsed)
	}
}

// The body limit covers every control-plane handler, declared or chunked;
// data-plane streams are left to their own handlers.
func TestBodyLimit(t *testing.T) {
	_, e, _ := testGateway(t, Config{MaxBody: 64}, nil, nil)
	e.POST("/test/echo", func(c *gin.Context) {
		b, err := io.ReadAll(c.Request.Body)
		if err != nil {
			c.String(http.StatusRequestEntityTooLarge, "cut at %d: %v", len(b), err)
			return
		}
		c.String(http.StatusOK, "%d", len(b))
	})
	big := strings.Repeat("x", 65)
	// Declared too large: refused before any handler reads.
	w := serve(e, http.MethodPost, "/test/echo", strings.NewReader(big))
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), `"code":"413"`) || !strings.Contains(w.Body.String(), "larger than 64") {
		t.Errorf("declared: %d %s", w.Code, w.Body)
	}
	// Chunked: the handler's read fails at the limit.
	r := httptest.NewRequest(http.MethodPost, "/test/echo", io.MultiReader(strings.NewReader(big)))
	r.ContentLength = -1
	w = httptest.NewRecorder()
	e.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "too large") {
		t.Errorf("chunked: %d %s", w.Code, w.Body)
	}
	// Within the limit: untouched.
	if w := serve(e, http.MethodPost, "/test/echo", strings.NewReader(big[:64])); w.Code != http.StatusOK || w.Body.String() != "64" {
		t.Errorf("within: %d %s", w.Code, w.Body)
	}
	// A control-plane route answers 413 in the error format.
	r = httptest.NewRequest(http.MethodPost, "/projects", io.MultiReader(strings.NewReader(`{"name": "`+big+`"}`)))
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/json")
	w = httptest.NewRecorder()
	e.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), `"code":"413"`) {
		t.Errorf("control plane: %d %s", w.Code, w.Body)
	}
}

// A control-plane call's write deadline does not outlive it: a stream
// that follows on the same keep-alive connection is not cut.
func TestDeadlineDoesNotLeakToNextRequest(t *testing.T) {
	oldGrace := bodyGrace
	bodyGrace = 100 * time.Millisecond
	t.Cleanup(func() { bodyGrace = oldGrace })
	g, _, _ := testGateway(t, Config{RequestTimeout: 100 * time.Millisecond}, nil, nil)
	e := g.handler(append(g.routes(), endpoint{method: "GET", path: "/test/stream", access: public, stream: true, handler: func(c *gin.Context) {
		c.Status(http.StatusOK)
		for i := 0; i < 6; i++ { // 600ms in all, well past the 200ms deadline
			if _, err := c.Writer.Write(bytes.Repeat([]byte("x"), 1024)); err != nil {
				return
			}
			c.Writer.Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}}))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	client := srv.Client() // one keep-alive connection for both calls
	resp, err := client.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = client.Get(srv.URL + "/test/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != 6*1024 {
		t.Errorf("stream cut after %d bytes: %v", n, err)
	}
}

// TestClientGoneIs499: a client that gives up on a call before its answer
// is logged, metered and audited as nginx does it, 499, not as a failure
// of the gateway (500/504 and an error line would page someone for a
// client's Ctrl-C).
func TestClientGoneIs499(t *testing.T) {
	nc := startNATS(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	arrived := make(chan struct{}, 1)
	_, err := events.AddService(nc, "projects", "0.0.0", "stand-in", 30*time.Second, map[string]events.Operation{
		"get": func(context.Context, events.Request) (any, error) {
			arrived <- struct{}{}
			<-release // slower than the client's patience
			return map[string]string{"id": "1"}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	g, e, logs := testGateway(t, Config{RequestTimeout: 20 * time.Second}, nc, nil)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/projects/1", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the cancelled call was answered %d", resp.StatusCode)
	}
	var line map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for line == nil && time.Now().Before(deadline) {
		for _, l := range logs.lines(t) {
			if l["msg"] == "http request" && l["route"] == "/projects/:id" {
				line = l
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if line == nil {
		t.Fatalf("no access log line for the cancelled call:\n%s", logs)
	}
	if line["status"] != float64(499) || line["level"] != "INFO" {
		t.Errorf("the cancelled call was logged as status %v at %v, want 499 at INFO", line["status"], line["level"])
	}
	m := serve(g.Handler(), http.MethodGet, "/metrics", nil).Body.String()
	if !strings.Contains(m, `mlpanel_http_requests_total{method="GET",route="/projects/:id",status="499"} 1`) {
		t.Errorf("the cancelled call is not metered as 499:\n%s", grepLines(m, "mlpanel_http_requests_total"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
