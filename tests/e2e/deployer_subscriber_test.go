package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestExampleSubscriber runs examples/subscriber (its own module) against
// the panel: it prints a deployment's events, and after a restart with the
// same durable name it resumes instead of printing them again.
func TestExampleSubscriber(t *testing.T) {
	f := depSetup(t)
	dir := filepath.Join(repoRoot, "examples", "subscriber")
	bin := filepath.Join(t.TempDir(), "subscriber")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOWORK=off") // as a user outside the repository builds it
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the example subscriber: %v\n%s", err, out)
	}
	nats := panel.NC.ConnectedUrl()
	var stderr bytes.Buffer // the subscriber's log, for failures
	defer func() {
		if t.Failed() {
			t.Logf("subscriber log:\n%s", stderr.String())
		}
	}()
	start := func() (*exec.Cmd, <-chan map[string]any) {
		cmd := exec.Command(bin, "-nats", nats, "-durable", "e2e-example", "-json")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan map[string]any, 100)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var ev map[string]any
				if json.Unmarshal(sc.Bytes(), &ev) == nil {
					lines <- ev
				}
			}
		}()
		return cmd, lines
	}
	stop := func(cmd *exec.Cmd) {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("the subscriber did not stop on SIGTERM")
		}
	}
	// waitFor reads events until one of deployment id has the type.
	waitFor := func(lines <-chan map[string]any, id, typ string, seen map[string]int) {
		t.Helper()
		deadline := time.After(2 * time.Minute)
		for {
			select {
			case ev, ok := <-lines:
				if !ok {
					t.Fatalf("the subscriber ended before %s of deployment %s", typ, id)
				}
				if ev["subject"] != "deployment/"+id {
					continue
				}
				seen[ev["id"].(string)]++
				if ev["type"] == "io.mlpanel.deployment."+typ {
					return
				}
			case <-deadline:
				t.Fatalf("no %s event of deployment %s from the subscriber", typ, id)
			}
		}
	}

	seen := map[string]int{}
	cmd, lines := start()
	time.Sleep(2 * time.Second) // the consumer exists; it delivers new events only
	d := createDeployment(t, map[string]any{"project_id": f.project.ID, "model_id": f.model, "version": f.version})
	waitFor(lines, d.ID, "starting", seen)
	stop(cmd)

	deleteDeploymentQuietly(d.ID)
	cmd, lines = start()
	defer stop(cmd)
	waitFor(lines, d.ID, "deleted", seen)
	for id, n := range seen {
		if n > 1 {
			t.Fatalf("event %s printed %d times across the restart", id, n)
		}
	}
	if len(seen) < 4 {
		t.Fatalf("saw %d events of deployment %s, want created, starting, ..., deleted", len(seen), d.ID)
	}
	r := call(t, http.MethodGet, "/deployments/"+d.ID, nil)
	expect(t, r, http.StatusNotFound)
}
