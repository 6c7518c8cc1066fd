// Package nomadtest runs a real Nomad cluster on this machine for tests:
// one server agent and N client agents ("nodes"), each with its own name,
// data folder, ports and range of dynamic ports, all advertising
// 127.0.0.1, with the raw_exec driver on. A test can kill a node the way
// a machine dies (its agent and every task it runs, at once) and start it
// again. Everything is stopped and removed when the test ends.
//
// The agent binary is built once per machine by scripts/engines-nomad.sh
// into ~/.cache/mlpanel/engines; a test fails, saying so, when it is
// missing.
package nomadtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/servertest"

	"github.com/hashicorp/nomad/api"
)

// Version is the Nomad the tests run.
const Version = "1.10.5"

// Install is how to get the agent binary.
const Install = "run scripts/engines-nomad.sh (it builds Nomad " + Version + " from the Go module proxy into ~/.cache/mlpanel/engines, ~7 min; .ci/run does it)"

// Binary is where the agent is, or an error saying how to build it.
// MLPANEL_NOMAD_BIN overrides the cache.
func Binary() (string, error) {
	if p := os.Getenv("MLPANEL_NOMAD_BIN"); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the home folder for the Nomad binary: %w", err)
	}
	p := filepath.Join(home, ".cache", "mlpanel", "engines", "nomad-"+Version)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the Nomad agent %s is missing: %s", p, Install)
	}
	return p, nil
}

// Cluster is one server agent and its client agents.
type Cluster struct {
	// Addr is the HTTP API of the server agent (MLPANEL_NOMAD_ADDR).
	Addr string
	// Datacenter every node is in.
	Datacenter string

	t      testing.TB
	bin    string
	dir    string
	rpc    int // the server's RPC port, which clients join
	server *agent
	mu     sync.Mutex
	nodes  []*agent
}

type agent struct {
	name   string
	config string
	log    string
	cmd    *exec.Cmd
	done   chan struct{}
}

// Start runs a server and n client nodes (node-1 .. node-n) and waits
// until every node is ready to take work.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mlpanel-nomad-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, bin: bin, dir: dir, Datacenter: "dc1"}
	t.Cleanup(c.stop)

	http, rpc, serf := servertest.FreePort(t), servertest.FreePort(t), servertest.FreePort(t)
	c.rpc = rpc
	c.Addr = "http://127.0.0.1:" + strconv.Itoa(http)
	// Short heartbeats so a killed node is declared down in seconds, not
	// the production default of tens of seconds.
	c.server = c.agent("server", fmt.Sprintf(`
server {
  enabled          = true
  bootstrap_expect = 1
  heartbeat_grace  = "3s"
  min_heartbeat_ttl = "2s"
}
client { enabled = false }
ports { http = %d
        rpc = %d
        serf = %d }
`, http, rpc, serf))
	c.launch(c.server)
	c.waitLeader()

	// Dynamic port ranges below the kernel's ephemeral range, distinct per
	// node and per test process, so two nodes never hand out one port.
	base := 21000 + (os.Getpid()%40)*250
	for i := 1; i <= n; i++ {
		lo := base + (i-1)*50
		a := c.agent(fmt.Sprintf("node-%d", i), fmt.Sprintf(`
client {
  enabled           = true
  servers           = ["127.0.0.1:%d"]
  network_interface = "lo"
  min_dynamic_port  = %d
  max_dynamic_port  = %d
}
server { enabled = false }
ports { http = %d
        rpc = %d
        serf = %d }
plugin "raw_exec" {
  config { enabled = true }
}
# Allocation stats (the panel's figures of a server's memory and CPU)
# exist only where the client publishes them.
telemetry {
  publish_allocation_metrics = true
  collection_interval        = "1s"
}
`, rpc, lo, lo+49, servertest.FreePort(t), servertest.FreePort(t), servertest.FreePort(t)))
		c.nodes = append(c.nodes, a)
		c.launch(a)
	}
	for _, a := range c.nodes {
		c.WaitNode(a.name, true)
	}
	return c
}

// agent writes the configuration of one agent.
func (c *Cluster) agent(name, body string) *agent {
	data := filepath.Join(c.dir, name)
	if err := os.MkdirAll(data, 0o755); err != nil {
		c.t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
name       = %q
datacenter = %q
data_dir   = %q
bind_addr  = "127.0.0.1"
log_level  = "INFO"
disable_update_check = true
advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}
consul { auto_advertise = false
         server_auto_join = false
         client_auto_join = false }
%s`, name, c.Datacenter, data, body)
	path := filepath.Join(c.dir, name+".hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return &agent{name: name, config: path, log: filepath.Join(c.dir, name+".log")}
}

// launch starts an agent in its own process group. Nomad 1.10 refuses
// to start with AWS_CA_BUNDLE set.
func (c *Cluster) launch(a *agent) {
	logf, err := os.OpenFile(a.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(c.bin, "agent", "-config="+a.config)
	cmd.Env = withoutEnv(os.Environ(), "AWS_CA_BUNDLE")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting nomad agent %s: %v", a.name, err)
	}
	a.cmd, a.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(a.done) }()
}

// Client is an API client of the cluster.
func (c *Cluster) Client() *api.Client {
	cl, err := api.NewClient(&api.Config{Address: c.Addr})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

func (c *Cluster) waitLeader() {
	cl := c.Client()
	c.eventually(60*time.Second, "the Nomad server elected no leader", func() bool {
		l, err := cl.Status().Leader()
		return err == nil && l != ""
	})
}

// WaitNode waits until the node named name is ready (up) or down in the
// server's view.
func (c *Cluster) WaitNode(name string, up bool) {
	c.t.Helper()
	cl := c.Client()
	want := api.NodeStatusReady
	if !up {
		want = api.NodeStatusDown
	}
	c.eventually(90*time.Second, fmt.Sprintf("node %s never became %s", name, want), func() bool {
		nodes, _, err := cl.Nodes().List(nil)
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.Name == name {
				return n.Status == want && (!up || n.SchedulingEligibility == api.NodeSchedulingEligible)
			}
		}
		return false
	})
}

// Nodes are the names of the client nodes.
func (c *Cluster) Nodes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.nodes))
	for i, a := range c.nodes {
		out[i] = a.name
	}
	return out
}

// NodeName is the name of the node with the given Nomad node id.
func (c *Cluster) NodeName(id string) string {
	c.t.Helper()
	n, _, err := c.Client().Nodes().Info(id, nil)
	if err != nil {
		c.t.Fatalf("looking up node %s: %v", id, err)
	}
	return n.Name
}

// Kill takes a node off the cluster the way a lost machine goes: the
// agent and every task process it started die at once (SIGKILL). Nomad
// learns of it only when the node misses its heartbeats.
func (c *Cluster) Kill(name string) {
	c.t.Helper()
	a := c.node(name)
	if a.cmd == nil {
		return
	}
	// Tasks run under executor processes that are the agent's children,
	// some in process groups of their own: kill the whole tree.
	pids := append(descendants(a.cmd.Process.Pid), a.cmd.Process.Pid)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-a.done
	a.cmd = nil
}

// Restart starts a killed node again with its old data folder.
func (c *Cluster) Restart(name string) {
	c.t.Helper()
	a := c.node(name)
	if a.cmd != nil {
		c.t.Fatalf("node %s is running", name)
	}
	c.launch(a)
	c.WaitNode(name, true)
}

func (c *Cluster) node(name string) *agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.nodes {
		if a.name == name {
			return a
		}
	}
	c.t.Fatalf("no node %s in the test cluster", name)
	return nil
}

// LogTail is the end of an agent's log, for failure messages.
func (c *Cluster) LogTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop ends every agent and every task, then removes the folders. Jobs
// are stopped first so their tasks end through Nomad; whatever is left
// is killed with its agent.
func (c *Cluster) stop() {
	cl, err := api.NewClient(&api.Config{Address: c.Addr})
	if err == nil {
		if jobs, _, err := cl.Jobs().List(nil); err == nil {
			for _, j := range jobs {
				_, _, _ = cl.Jobs().Deregister(j.ID, true, nil)
			}
		}
	}
	for _, a := range c.nodes {
		if a.cmd == nil {
			continue
		}
		pids := append(descendants(a.cmd.Process.Pid), a.cmd.Process.Pid)
		_ = syscall.Kill(a.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		<-a.done
	}
	if c.server != nil && c.server.cmd != nil {
		_ = syscall.Kill(c.server.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-c.server.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(c.server.cmd.Process.Pid, syscall.SIGKILL)
			<-c.server.done
		}
	}
	if c.t.Failed() {
		for _, name := range append([]string{"server"}, c.Nodes()...) {
			c.t.Logf("nomad agent %s log tail:\n%s", name, c.LogTail(name))
		}
	}
	// A client running as root mounts a tmpfs on each task's secrets and
	// private folders: unmount them, or the folders cannot be removed.
	unmountUnder(c.dir)
	if err := os.RemoveAll(c.dir); err != nil {
		c.t.Errorf("removing the Nomad test folder: %v", err)
	}
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			points = append(points, f[1])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

func (c *Cluster) eventually(within time.Duration, msg string, ok func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s within %s; server log tail:\n%s", msg, within, c.LogTail("server"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// descendants are every process below pid, found through /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses: the fields
		// after the last ')' are fixed.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, ch := range children[p] {
			out = append(out, ch)
			walk(ch)
		}
	}
	walk(pid)
	return out
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
