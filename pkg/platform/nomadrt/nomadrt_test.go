package nomadrt_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadtest"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// server is a real HTTP server process that answers /health, on the
// address and port Nomad gives it.
const server = `
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
`

func spec(t *testing.T, name string) nomadrt.Spec {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed for the test server: %v", err)
	}
	return nomadrt.Spec{
		Name: name, Group: "test", Meta: map[string]string{"mlpanel.test": t.Name()},
		Command: py, Args: []string{"-c", server, nomadrt.Bind, nomadrt.Port},
		CheckPath: "/health", MemoryMB: 64,
	}
}

func waitRunning(t *testing.T, rt *nomadrt.Runtime, name, notNode string) nomadrt.Status {
	t.Helper()
	var st nomadrt.Status
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		var err error
		st, err = rt.Observe(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase == nomadrt.Running && st.Node != notNode && rt.Healthy(context.Background(), st.Address, "/health") {
			return st
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("job %s never ran healthy (not on %q); last status %+v", name, notNode, st)
	return st
}

// A job runs a real process whose address comes from its allocation; a
// lost node moves it to the other node at a new address; stop, run
// again and purge behave as the panel's sleep, wake and delete need.
func TestRunMoveStopPurge(t *testing.T) {
	c := nomadtest.Start(t, 2)
	rt, err := nomadrt.New(nomadrt.Config{Addr: c.Addr, Driver: nomadrt.RawExec, Datacenters: []string{c.Datacenter}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const name = "mlpanel-test-1"
	if err := rt.Run(ctx, spec(t, name)); err != nil {
		t.Fatal(err)
	}
	first := waitRunning(t, rt, name, "")
	if !strings.HasPrefix(first.Address, "127.0.0.1:") {
		t.Fatalf("address %q: want the node's loopback address and the allocated port", first.Address)
	}

	// Registering the same job again (an adopting panel) keeps the one
	// allocation it has.
	if err := rt.Run(ctx, spec(t, name)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	again, err := rt.Observe(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if again.Alloc != first.Alloc {
		t.Fatalf("running the unchanged job again replaced its allocation %s with %s", first.Alloc, again.Alloc)
	}
	allocs, _, err := c.Client().Jobs().Allocations(name, true, nil)
	if err != nil || len(allocs) != 1 {
		t.Fatalf("want one allocation after registering twice, got %d (%v)", len(allocs), err)
	}

	// The node dies: Nomad places the server on the other one.
	c.Kill(first.Node)
	if rt.Healthy(ctx, first.Address, "/health") {
		t.Fatalf("the server on the killed node %s still answers", first.Node)
	}
	moved := waitRunning(t, rt, name, first.Node)
	if moved.Address == first.Address {
		t.Fatalf("the rescheduled server kept address %s; nodes have distinct port ranges", moved.Address)
	}

	// Sleep = stop the job; the process ends, the job is still known.
	if err := rt.Stop(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stopped job's server to end", func() bool { return !rt.Healthy(ctx, moved.Address, "/health") })
	if st, _ := rt.Observe(ctx, name); st.Phase != nomadrt.Absent {
		t.Fatalf("a stopped job observes as %s, want absent", st.Phase)
	}
	if names, _ := rt.Names(ctx, "mlpanel-test-"); len(names) != 1 {
		t.Fatalf("a stopped job is still listed by Nomad (for adoption), got %v", names)
	}

	// Wake = run it again.
	if err := rt.Run(ctx, spec(t, name)); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, rt, name, "")

	// Delete = purge: Nomad forgets it.
	if err := rt.Stop(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the purged job to disappear", func() bool {
		names, err := rt.Names(ctx, "mlpanel-test-")
		return err == nil && len(names) == 0
	})
	// Stopping what is gone is not an error (a delete retried).
	if err := rt.Stop(ctx, name, true); err != nil {
		t.Fatalf("stopping a purged job: %v", err)
	}
}

func TestConfigSaysWhatToSet(t *testing.T) {
	for _, tc := range []struct {
		cfg  nomadrt.Config
		want string
	}{
		{nomadrt.Config{Driver: nomadrt.RawExec}, "MLPANEL_NOMAD_ADDR"},
		{nomadrt.Config{Addr: "http://x:4646", Driver: "exec2"}, "MLPANEL_NOMAD_DRIVER"},
		{nomadrt.Config{Addr: "http://x:4646", Driver: nomadrt.Docker}, "MLPANEL_NOMAD_IMAGE"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 60s for %s", what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// The stats of a running server come from the Nomad client that runs
// it: resident memory and CPU use, marked as Nomad's measure; a stopped
// job has none to give.
func TestUsageOfARunningServer(t *testing.T) {
	c := nomadtest.Start(t, 1)
	rt, err := nomadrt.New(nomadrt.Config{Addr: c.Addr, Driver: nomadrt.RawExec, Datacenters: []string{c.Datacenter}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const name = "mlpanel-test-usage"
	if _, err := rt.Usage(ctx, name); !errors.Is(err, nomadrt.ErrNotRunning) {
		t.Fatalf("usage of a job that does not exist: %v, want ErrNotRunning", err)
	}
	if err := rt.Run(ctx, spec(t, name)); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, rt, name, "")
	var u proc.Usage
	// The client samples its tasks every second; the first read may
	// come before the first sample.
	eventually(t, "non-zero memory in the allocation's stats", func() bool {
		u, err = rt.Usage(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return u.RSSBytes > 0
	})
	// A Python interpreter with an HTTP server holds megabytes, not bytes.
	if u.RSSBytes < 1<<20 || u.RSSBytes > 1<<30 {
		t.Fatalf("RSS %d bytes: not the resident memory of a small Python server", u.RSSBytes)
	}
	if u.MeasuredBy != nomadrt.MeasuredByNomad || u.PSSBytes != 0 || u.Processes < 1 {
		t.Fatalf("usage %+v: want Nomad's measure, no PSS, at least one process", u)
	}
	if err := rt.Stop(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Usage(ctx, name); !errors.Is(err, nomadrt.ErrNotRunning) {
		t.Fatalf("usage of a stopped job: %v, want ErrNotRunning", err)
	}
}
