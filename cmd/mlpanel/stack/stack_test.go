package stack

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartFailsCleanly: a missing mlflow is a clear error, not a panic,
// and what had started is stopped again: its ports are free, its
// goroutines ended and no child process is left.
func TestStartFailsCleanly(t *testing.T) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.Mlflow = "/nonexistent/mlflow"
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	cfg.NATSListen, cfg.MongoListen, cfg.Gateway.Addr = addrs[0], addrs[1], addrs[2]
	before := runtime.NumGoroutine()
	s, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		s.Close()
		t.Fatal("Start succeeded without an mlflow executable")
	}
	if !strings.Contains(err.Error(), "/nonexistent/mlflow") || !strings.Contains(err.Error(), "make venv") {
		t.Fatalf("error %q does not name the executable and the fix", err)
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s is still taken after the failed start: %v", a, err)
			continue
		}
		ln.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before the start, %d after it failed:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
	if kids := children(t); len(kids) > 0 {
		t.Errorf("child processes left: %v", kids)
	}
}

// freeAddr is a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// children lists the pids whose parent is this test process.
func children(t *testing.T) []string {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	me := strconv.Itoa(os.Getpid())
	var out []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces, so split after ")".
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		if f := strings.Fields(rest); len(f) > 1 && f[1] == me {
			out = append(out, filepath.Base(filepath.Dir(p)))
		}
	}
	return out
}
