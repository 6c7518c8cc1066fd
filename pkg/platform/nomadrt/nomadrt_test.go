package nomadrt_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadtest"
)

// server is a real HTTP server process that answers /health, on the
// address and port Nomad gives it, and /env/NAME with the value of its
// environment variable NAME.
const server = `
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/env/"):
            v = os.environ.get(self.path[5:])
            self.send_response(404 if v is None else 200)
            self.end_headers()
            self.wfile.write((v or "").encode())
            return
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

// A job's Secret never appears in what Nomad shows of the job (anyone
// with read-job sees its env); the running task has it in its
// environment, gets a changed value when the job is run again, and the
// variable goes when the job is purged.
func TestSecretStaysOutOfTheJob(t *testing.T) {
	c := nomadtest.Start(t, 1)
	rt, err := nomadrt.New(nomadrt.Config{Addr: c.Addr, Driver: nomadrt.RawExec, Datacenters: []string{c.Datacenter}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const name = "mlpanel-test-secret"
	// Quotes, a backslash, a dollar, HTML characters and a newline: the
	// template must hand every byte over as it is.
	password := "postgresql://mlflow:s3cr\"et$HOME<&>\\x\nend@db:5432/p1"
	s := spec(t, name)
	s.Env = map[string]string{"PLAIN": "visible"}
	s.Secret = map[string]string{"MLFLOW_BACKEND_STORE_URI": password}
	if err := rt.Run(ctx, s); err != nil {
		t.Fatal(err)
	}
	st := waitRunning(t, rt, name, "")
	if got := envOf(t, st.Address, "MLFLOW_BACKEND_STORE_URI"); got != password {
		t.Fatalf("the task sees MLFLOW_BACKEND_STORE_URI=%q, want %q", got, password)
	}
	if got := envOf(t, st.Address, "PLAIN"); got != "visible" {
		t.Fatalf("the task sees PLAIN=%q, want the job's plain env", got)
	}

	// What a read-job token sees: the job, its versions, its allocation.
	nc := c.Client()
	job, _, err := nc.Jobs().Info(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	versions, _, _, err := nc.Jobs().Versions(name, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	alloc, _, err := nc.Allocations().Info(st.Alloc, nil)
	if err != nil {
		t.Fatal(err)
	}
	for what, v := range map[string]any{"job": job, "job versions": versions, "allocation": alloc} {
		raw, _ := json.Marshal(v)
		if strings.Contains(string(raw), "s3cr") {
			t.Errorf("the %s as Nomad shows it holds the secret: %s", what, raw)
		}
	}
	if job.TaskGroups[0].Tasks[0].Env["MLFLOW_BACKEND_STORE_URI"] != "" {
		t.Errorf("the secret is in the task's env")
	}

	// A new password (a restart after the server's changed) reaches the
	// running task without a new job version.
	s.Secret = map[string]string{"MLFLOW_BACKEND_STORE_URI": "postgresql://mlflow:rotated@db/p1"}
	if err := rt.Run(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the task to see the new secret", func() bool {
		st, err := rt.Observe(ctx, name)
		return err == nil && st.Phase == nomadrt.Running && envOf(t, st.Address, "MLFLOW_BACKEND_STORE_URI") == "postgresql://mlflow:rotated@db/p1"
	})

	// Sleep keeps the variable for the wake; purge removes it.
	if err := rt.Stop(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	if v, _, err := nc.Variables().Peek(nomadrt.SecretPath(name), nil); err != nil || v == nil {
		t.Fatalf("a stopped job's variable is gone (%v): the wake would wait for it forever", err)
	}
	if err := rt.Stop(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	if v, _, err := nc.Variables().Peek(nomadrt.SecretPath(name), nil); err != nil || v != nil {
		t.Fatalf("the purged job's variable %s is still there (%v)", nomadrt.SecretPath(name), err)
	}
	// Purging again, and purging a job that never had a secret, is fine.
	if err := rt.Stop(ctx, name, true); err != nil {
		t.Fatal(err)
	}
}

// envOf asks the test server for one variable of its environment; ""
// when it does not answer.
func envOf(t *testing.T, address, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + address + "/env/" + name)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
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
