package sockhttp

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// serveSocket runs an HTTP server on a Unix socket that echoes the
// method, path, query and Host header it got.
func serveSocket(t *testing.T) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" host="+r.Host)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return socket
}

func get(t *testing.T, c *http.Client, method, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSocketAddressRoundTrip(t *testing.T) {
	socket := serveSocket(t)
	addr := URL(socket, "/projects/4/mlflow")
	if !strings.HasPrefix(addr, "http+unix://%2F") || strings.Contains(strings.TrimPrefix(addr, "http+unix://"), socket) {
		t.Fatalf("URL = %q; want the socket path escaped in the host", addr)
	}
	if got, ok := Socket(addr); !ok || got != socket {
		t.Fatalf("Socket(%q) = %q, %v", addr, got, ok)
	}
	if _, ok := Socket("http://127.0.0.1:5000/projects/4/mlflow"); ok {
		t.Fatal("a TCP address was taken for a socket")
	}
	c := &http.Client{Transport: Transport(nil)}
	status, body := get(t, c, "GET", Target(addr)+"/health?x=1")
	if status != 200 || body != "GET /projects/4/mlflow/health?x=1 host=localhost" {
		t.Fatalf("through the socket: %d %q", status, body)
	}
}

// The relay reads one socket server per token, GET and HEAD only; an
// unknown token or the bare port opens nothing.
func TestRelayReadsOnlyWithItsToken(t *testing.T) {
	socket := serveSocket(t)
	r, err := StartRelay()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	u, err := r.URL(URL(socket, "/projects/4/mlflow"))
	if err != nil || !strings.HasPrefix(u, "http://127.0.0.1:") {
		t.Fatalf("relay URL %q, %v", u, err)
	}
	c := http.DefaultClient
	if status, body := get(t, c, "GET", u+"/api/2.0/mlflow/registered-models/get?name=m"); status != 200 ||
		body != "GET /projects/4/mlflow/api/2.0/mlflow/registered-models/get?name=m host=localhost" {
		t.Fatalf("GET through the relay: %d %q", status, body)
	}
	if status, _ := get(t, c, "POST", u+"/api/2.0/mlflow/experiments/create"); status != http.StatusMethodNotAllowed {
		t.Fatalf("POST through the relay: %d, want 405", status)
	}
	port := strings.Join(strings.Split(u, "/")[:3], "/")
	if status, _ := get(t, c, "GET", port+"/projects/4/mlflow/health"); status != 404 {
		t.Fatalf("GET without a token: %d, want 404", status)
	}
	if status, _ := get(t, c, "GET", port+"/"+strings.Repeat("0", 48)+"/projects/4/mlflow/health"); status != 404 {
		t.Fatalf("GET with a wrong token: %d, want 404", status)
	}
	if again, _ := r.URL(URL(socket, "/projects/4/mlflow")); again != u {
		t.Fatalf("a second URL for the same server: %q, want %q", again, u)
	}
}

// TestRelayCloseLeavesNothing: after Close the relay's port refuses, and
// no goroutine of it (its server, its connections to the socket server)
// is left, so a deployer that stops leaks neither.
func TestRelayCloseLeavesNothing(t *testing.T) {
	socket := serveSocket(t)
	http.DefaultClient.CloseIdleConnections()
	before := runtime.NumGoroutine()
	r, err := StartRelay()
	if err != nil {
		t.Fatal(err)
	}
	u, err := r.URL(URL(socket, "/projects/4/mlflow"))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{}}
	for range 3 {
		if status, _ := get(t, c, "GET", u+"/health"); status != 200 {
			t.Fatalf("GET through the relay: %d", status)
		}
	}
	c.CloseIdleConnections()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	port := strings.Split(u, "/")[2]
	if conn, err := net.DialTimeout("tcp", port, time.Second); err == nil {
		conn.Close()
		t.Fatalf("the relay's port %s still accepts after Close", port)
	}
	// Connections close asynchronously on the socket server's side too;
	// give the runtime a moment before counting.
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before the relay, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
