package nomadrt_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadtest"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
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
	// The client samples its tasks every second, but its executor finds
	// a task's child processes by scanning the process tree every 5 s
	// (pidScanInterval): the first samples may count only the launcher
	// (about 250 KiB), not the Python server under it. Wait for a
	// server's size; the bounds below still judge the figure.
	eventually(t, "a server's memory (at least 1 MiB) in the allocation's stats", func() bool {
		u, err = rt.Usage(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return u.RSSBytes >= 1<<20
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

// volumeServer answers /health and, on /starts, how many times it has
// started on the folder it is given: what a server keeps on its volume.
const volumeServer = `
import http.server, os, sys
path = os.path.join(sys.argv[3], "starts")
with open(path, "a") as f:
    f.write("start\n")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/starts":
            body = str(len(open(path).read().splitlines())).encode()
        else:
            body = b"OK"
        self.send_response(200 if self.path in ("/health", "/starts") else 404)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
`

func starts(t *testing.T, address string) string {
	t.Helper()
	resp, err := http.Get("http://" + address + "/starts")
	if err != nil {
		t.Fatalf("asking the server at %s how often it started: %v", address, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A dynamic host volume (the built-in mkdir plugin) holds a server's
// files on one node: the job is placed on that node, keeps its files
// across a stop and a start, waits while the node is down (never placed
// empty on the other node) and comes back there with its files when the
// node returns; deleting the volume removes its folder.
func TestHostVolumePinsTheServerToItsNode(t *testing.T) {
	c := nomadtest.Start(t, 2)
	rt, err := nomadrt.New(nomadrt.Config{Addr: c.Addr, Driver: nomadrt.RawExec, Datacenters: []string{c.Datacenter}, Volume: nomadrt.VolumeHost})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const name = "mlpanel-test-vol"
	if _, ok, err := rt.FindVolume(ctx, name); err != nil || ok {
		t.Fatalf("a volume before any was made: %v %v", ok, err)
	}
	v, err := rt.CreateVolume(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if v.NodeName == "" || v.HostPath == "" || v.State != "ready" {
		t.Fatalf("new host volume %+v: want its node, its folder and ready", v)
	}
	if again, ok, err := rt.FindVolume(ctx, name); err != nil || !ok || again.ID != v.ID || again.HostPath != v.HostPath {
		t.Fatalf("finding the volume by name: %+v %v %v, want %+v", again, ok, err, v)
	}

	sp := spec(t, name)
	sp.Args = []string{"-c", volumeServer, nomadrt.Bind, nomadrt.Port, v.HostPath}
	sp.Volume = name
	if err := rt.Run(ctx, sp); err != nil {
		t.Fatal(err)
	}
	first := waitRunning(t, rt, name, "")
	if first.Node != v.NodeName {
		t.Fatalf("the job runs on %s, its volume is on %s", first.Node, v.NodeName)
	}

	// Sleep and wake: the files stay.
	if err := rt.Stop(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stopped server to end", func() bool { return !rt.Healthy(ctx, first.Address, "/health") })
	if err := rt.Run(ctx, sp); err != nil {
		t.Fatal(err)
	}
	woken := waitRunning(t, rt, name, "")
	if got := starts(t, woken.Address); woken.Node != v.NodeName || got != "2" {
		t.Fatalf("after a stop and a start: node %s, %s starts on the volume; want %s and 2", woken.Node, got, v.NodeName)
	}

	// The volume's node dies: the server waits for it.
	c.Kill(v.NodeName)
	c.WaitNode(v.NodeName, false)
	if down := rt.NodeDown(ctx, v); !strings.HasPrefix(down, v.NodeName) {
		t.Fatalf("NodeDown %q while %s is down", down, v.NodeName)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		st, err := rt.Observe(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase == nomadrt.Running {
			t.Fatalf("the job runs on %s while the node %s holding its volume is down", st.Node, v.NodeName)
		}
		time.Sleep(time.Second)
	}

	// The node comes back: so does the server, with its files.
	c.Restart(v.NodeName)
	back := waitRunning(t, rt, name, "")
	if got := starts(t, back.Address); back.Node != v.NodeName || got != "3" {
		t.Fatalf("after the node came back: node %s, %s starts on the volume; want %s and 3", back.Node, got, v.NodeName)
	}

	// Delete: the job goes, then the volume and its folder.
	if err := rt.Stop(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	if err := rt.DeleteVolume(ctx, name, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := rt.FindVolume(ctx, name); err != nil || ok {
		t.Fatalf("the deleted volume is still known: %v %v", ok, err)
	}
	if _, err := os.Stat(v.HostPath); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the deleted volume's folder %s: %v, want it gone", v.HostPath, err)
	}
	if err := rt.DeleteVolume(ctx, name, time.Minute); err != nil {
		t.Fatalf("deleting a deleted volume: %v", err)
	}
}

// The job's group claims the server's volume so Nomad places it where
// the volume is; the docker driver mounts it at DataDir, raw_exec (which
// mounts nothing) gets no volume_mount. Rendering only: no Docker daemon
// or CSI plugin runs here.
func TestJobClaimsTheVolume(t *testing.T) {
	for _, tc := range []struct {
		cfg   nomadrt.Config
		kind  string
		mount bool
	}{
		{nomadrt.Config{Addr: "http://x:4646", Driver: nomadrt.RawExec, Volume: nomadrt.VolumeHost}, "host", false},
		{nomadrt.Config{Addr: "http://x:4646", Driver: nomadrt.Docker, Image: "mlflow", Volume: nomadrt.VolumeHost}, "host", true},
		{nomadrt.Config{Addr: "http://x:4646", Driver: nomadrt.Docker, Image: "mlflow", Volume: nomadrt.VolumeCSI, VolumePlugin: "ebs"}, "csi", true},
	} {
		rt, err := nomadrt.New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		job := rt.Job(nomadrt.Spec{Name: "mlpanel-project-7", Command: "mlflow", Volume: "mlpanel-project-7"})
		g := job.TaskGroups[0]
		req := g.Volumes["data"]
		if len(g.Volumes) != 1 || req == nil || req.Type != tc.kind || req.Source != "mlpanel-project-7" || req.ReadOnly ||
			req.AccessMode != "single-node-writer" || req.AttachmentMode != "file-system" {
			t.Fatalf("%s/%s: group volumes %+v, want one writable %s volume from mlpanel-project-7", tc.cfg.Driver, tc.kind, req, tc.kind)
		}
		mounts := g.Tasks[0].VolumeMounts
		if !tc.mount {
			if len(mounts) != 0 {
				t.Fatalf("raw_exec cannot mount a volume, got volume_mount %+v", mounts)
			}
			continue
		}
		if len(mounts) != 1 || *mounts[0].Volume != "data" || *mounts[0].Destination != nomadrt.DataDir {
			t.Fatalf("%s/%s: volume_mount %+v, want data at %s", tc.cfg.Driver, tc.kind, mounts, nomadrt.DataDir)
		}
	}
	// Without a volume setting, or for a server without one, no claim.
	rt, _ := nomadrt.New(nomadrt.Config{Addr: "http://x:4646", Driver: nomadrt.RawExec})
	if g := rt.Job(nomadrt.Spec{Name: "a", Volume: "a"}).TaskGroups[0]; len(g.Volumes) != 0 {
		t.Fatalf("no MLPANEL_NOMAD_VOLUME, yet the job claims %+v", g.Volumes)
	}
}

func TestVolumeSettingsSayWhatToSet(t *testing.T) {
	for _, tc := range []struct {
		cfg  nomadrt.Config
		want string
	}{
		{nomadrt.Config{Addr: "http://x:4646", Driver: nomadrt.RawExec, Volume: "nfs"}, "MLPANEL_NOMAD_VOLUME="},
		{nomadrt.Config{Addr: "http://x:4646", Driver: nomadrt.RawExec, Volume: nomadrt.VolumeCSI, VolumePlugin: "ebs"}, "MLPANEL_NOMAD_DRIVER=docker"},
		{nomadrt.Config{Addr: "http://x:4646", Driver: nomadrt.Docker, Image: "i", Volume: nomadrt.VolumeCSI}, "MLPANEL_NOMAD_VOLUME_PLUGIN"},
		{nomadrt.Config{Addr: "http://x:4646", Driver: nomadrt.RawExec, Volume: nomadrt.VolumeHost, VolumeSize: "ten gigs"}, "MLPANEL_NOMAD_VOLUME_SIZE"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
	for _, ok := range []string{"", "1073741824", "10GiB", "512Mi", "1T"} {
		if err := (nomadrt.Config{Addr: "http://x:4646", Driver: nomadrt.RawExec, Volume: nomadrt.VolumeHost, VolumeSize: ok}).Validate(); err != nil {
			t.Errorf("MLPANEL_NOMAD_VOLUME_SIZE=%q refused: %v", ok, err)
		}
	}
}
