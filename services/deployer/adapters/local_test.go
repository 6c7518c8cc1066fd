package adapters

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
	"github.com/mlpanel/mlpanel/services/deployer/app"
)

// TestLocalCloseStopsTheRelay: a project on a Unix socket is reached
// through the relay the backend starts; Close (the deployer's shutdown)
// closes its port, so a stopped deployer leaves no listener behind.
func TestLocalCloseStopsTheRelay(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok "+r.URL.Path)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	l := &Local{}
	uri := l.TrackingURI(app.Project{ID: "1", InternalURL: sockhttp.URL(socket, "/projects/1/mlflow")})
	if !strings.HasPrefix(uri, "http://127.0.0.1:") {
		t.Fatalf("TrackingURI = %q, want the relay's loopback address", uri)
	}
	c := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	resp, err := c.Get(uri + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok /projects/1/mlflow/health" {
		t.Fatalf("through the relay: %d %q", resp.StatusCode, body)
	}
	c.CloseIdleConnections()

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	port := strings.Split(uri, "/")[2]
	if conn, err := net.DialTimeout("tcp", port, time.Second); err == nil {
		conn.Close()
		t.Fatalf("the relay's port %s still accepts after Close", port)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}
