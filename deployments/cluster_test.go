package deployments

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Ports of the multi-process test: 15300-15399 belongs to this suite, away
// from the e2e harness and from a panel the developer may be running.
const (
	natsPort    = 15300
	mongoPort   = 15301
	gatewayPort = 15302
	// MLPANEL_PORT_RANGE and MLPANEL_DEPLOY_PORT_RANGE.
	trackingPorts = "15310-15329"
	deployPorts   = "15330-15349"
)

// adminToken is the first admin's token (MLPANEL_ADMIN_TOKEN) the test
// calls the gateway with.
const adminToken = "multiprocess-test-admin-token"

// cluster is the panel as separate OS processes: nats-server, FerretDB,
// and each service built from its own main.
type cluster struct {
	t *testing.T // the (sub)test that helpers fail
	*clusterState
}

// clusterState is shared by the views of the cluster that subtests get
// from (*cluster).in.
type clusterState struct {
	root string
	bin  string // built binaries
	home string // MLPANEL_HOME, shared by projects and deployer as in compose
	logs string

	mu     sync.Mutex
	procs  []*process
	groups map[int]string // process groups the services started (tracking and model servers)
	nc     *nats.Conn
}

// adopt records a process group a service started for the test, so that
// one left behind by a failed stop is still ended at cleanup.
func (c *cluster) adopt(pgid int, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups == nil {
		c.groups = map[int]string{}
	}
	c.groups[pgid] = what
}

// groupAlive reports whether any process of the group still runs. A
// zombie does not count: a leader whose parent (the service) has just
// exited waits for init to reap it, yet signal 0 still reaches it.
func groupAlive(pgid int) bool {
	if pgid <= 0 || syscall.Kill(-pgid, 0) != nil {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, so split
		// after its closing parenthesis.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			return true
		}
	}
	return false
}

// waitGroupGone waits up to d for the group to end.
func waitGroupGone(pgid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for groupAlive(pgid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// in is the cluster as seen by a subtest: its helpers fail that subtest.
func (c *cluster) in(t *testing.T) *cluster { return &cluster{t: t, clusterState: c.clusterState} }

// process is one child. Each runs in its own process group, so stopping it
// also reaches anything it failed to clean up.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // the exit, once done is closed
	// stopNote says how stop went, for the failure report.
	stopNote string
}

// buildBinaries compiles every process of the cluster in one `go build`
// (one link step per binary, packages shared through the build cache).
// nats-server is built from the module version pkg/platform pins, the same
// server the embedded mode runs.
func buildBinaries(t *testing.T, root string) string {
	t.Helper()
	bin := t.TempDir()
	pkgs := []string{
		"github.com/nats-io/nats-server/v2",
		"./deployments/internal/ferretdbd",
		"./services/projects/cmd/projects",
		"./services/tracking/cmd/tracking",
		"./services/deployer/cmd/deployer",
		"./services/gateway/cmd/gateway",
	}
	began := time.Now()
	cmd := exec.Command("go", append([]string{"build", "-o", bin + string(os.PathSeparator)}, pkgs...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	t.Logf("built %d binaries in %s", len(pkgs), time.Since(began).Round(time.Second))
	return bin
}

func newCluster(t *testing.T, root, bin string) *cluster {
	// The logs outlive a failed test, for a look at what went wrong.
	logs, err := os.MkdirTemp("", "mlpanel-multiprocess-logs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs kept in %s", logs)
			return
		}
		_ = os.RemoveAll(logs)
	})
	c := &cluster{t: t, clusterState: &clusterState{root: root, bin: bin, home: t.TempDir(), logs: logs}}
	// Registered after the TempDir, so it runs before the home is removed.
	t.Cleanup(c.stopAll)
	return c
}

// env is what every service process gets: the machine's environment less
// any MLPANEL_ setting of the developer's shell, plus the cluster's wiring.
func (c *cluster) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MLPANEL_") {
			env = append(env, kv)
		}
	}
	return append(env,
		fmt.Sprintf("MLPANEL_NATS_URL=nats://127.0.0.1:%d", natsPort),
		fmt.Sprintf("MLPANEL_MONGO_URI=mongodb://127.0.0.1:%d/", mongoPort),
		fmt.Sprintf("MLPANEL_HTTP_ADDR=127.0.0.1:%d", gatewayPort),
		"MLPANEL_HOME="+c.home,
		"MLPANEL_MLFLOW="+filepath.Join(c.root, ".venv", "bin", "mlflow"),
		"MLPANEL_PORT_RANGE="+trackingPorts,
		"MLPANEL_DEPLOY_PORT_RANGE="+deployPorts,
		// A lost request shows as a 504 after this, not after a minute.
		"MLPANEL_REQUEST_TIMEOUT=20s",
		// Auth on, as in docker-compose.yml.
		"MLPANEL_AUTH=true",
		"MLPANEL_ADMIN_TOKEN="+adminToken,
		"MLPANEL_LOG_LEVEL=info",
		"GIT_PYTHON_REFRESH=quiet",
	)
}

// spawn starts a binary of the cluster; name tells instances apart.
func (c *cluster) spawn(name, binary string, args ...string) *process {
	c.t.Helper()
	logPath := filepath.Join(c.logs, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(c.bin, binary), args...)
	cmd.Dir = c.home
	cmd.Env = c.env()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig, waits up to grace, then kills the whole process group.
func (p *process) stop(sig syscall.Signal, grace time.Duration) {
	if p.exited() {
		return
	}
	began := time.Now()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		p.stopNote = fmt.Sprintf("%s: exited (%v) %s after %v", p.name, p.err, time.Since(began).Round(time.Millisecond), sig)
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		p.stopNote = fmt.Sprintf("%s: still running %s after %v: killed", p.name, grace, sig)
	}
}

// tail is the end of a process's log, for failure messages.
func (p *process) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stopAll stops the services before the infrastructure they need to shut
// down cleanly (projects stops its tracking servers, writing to Mongo).
func (c *cluster) stopAll() {
	if c.nc != nil {
		c.nc.Close()
	}
	c.mu.Lock()
	procs := append([]*process(nil), c.procs...)
	c.mu.Unlock()
	infra := map[string]bool{"nats": true, "ferretdb": true}
	for i := len(procs) - 1; i >= 0; i-- {
		if !infra[procs[i].name] {
			procs[i].stop(syscall.SIGTERM, 45*time.Second)
		}
	}
	for i := len(procs) - 1; i >= 0; i-- {
		if infra[procs[i].name] {
			procs[i].stop(syscall.SIGTERM, 15*time.Second)
		}
	}
	c.mu.Lock()
	groups := c.groups
	c.mu.Unlock()
	for g, what := range groups {
		if !waitGroupGone(g, 5*time.Second) {
			c.t.Errorf("%s (process group %d) outlived the service that started it", what, g)
			_ = syscall.Kill(-g, syscall.SIGKILL)
		}
	}
	if c.t.Failed() {
		for _, p := range procs {
			if p.stopNote != "" {
				c.t.Log(p.stopNote)
			}
		}
		for _, p := range procs {
			c.t.Logf("--- last lines of %s (%s):\n%s", p.name, p.log, p.tail(30))
		}
	}
}

// startInfra starts nats-server with JetStream and FerretDB, each as its
// own process, and waits until both accept connections.
func (c *cluster) startInfra() {
	c.t.Helper()
	// A leftover server of an interrupted run would answer in place of
	// ours, so a fixed port in use is an error, not something to wait for.
	for _, port := range []int{natsPort, mongoPort, gatewayPort} {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			c.t.Fatalf("port %d is in use (%v): is a process of an interrupted run still there? `ss -ltnp | grep %d` finds it", port, err, port)
		}
		ln.Close()
	}
	store := filepath.Join(c.home, "nats")
	natsd := c.spawn("nats", "nats-server", "-a", "127.0.0.1", "-p", fmt.Sprint(natsPort), "-js", "-sd", store)
	c.waitTCP(natsd, fmt.Sprintf("127.0.0.1:%d", natsPort), 20*time.Second)
	fdb := c.spawn("ferretdb", "ferretdbd", "-dir", filepath.Join(c.home, "ferretdb"), "-listen", fmt.Sprintf("127.0.0.1:%d", mongoPort))
	c.waitTCP(fdb, fmt.Sprintf("127.0.0.1:%d", mongoPort), 30*time.Second)
	var err error
	c.nc, err = nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", natsPort), nats.Name("cluster-test"))
	if err != nil {
		c.t.Fatalf("connecting to the NATS process: %v", err)
	}
}

// startService starts a service binary as instance name and waits until
// it answers $SRV.PING (or, for the gateway, /healthz).
func (c *cluster) startService(service, name string) *process {
	c.t.Helper()
	p := c.spawn(name, service)
	if service == "gateway" {
		c.waitHTTP(p, c.url("/healthz"), 30*time.Second)
		return p
	}
	c.waitPing(p, service, 60*time.Second)
	return p
}

func (c *cluster) waitTCP(p *process, addr string, timeout time.Duration) {
	c.t.Helper()
	c.waitFor(p, timeout, "listening on "+addr, func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

func (c *cluster) waitHTTP(p *process, url string, timeout time.Duration) {
	c.t.Helper()
	client := http.Client{Timeout: 2 * time.Second}
	c.waitFor(p, timeout, "answering "+url, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// waitPing waits until an instance of service answers, which for a NATS
// micro service means its endpoints are subscribed.
func (c *cluster) waitPing(p *process, service string, timeout time.Duration) {
	c.t.Helper()
	before := len(c.instances(service, "PING"))
	c.waitFor(p, timeout, "answering $SRV.PING."+service, func() bool {
		return len(c.instances(service, "PING")) > before
	})
}

// waitFor polls ok until timeout, failing early when p exits.
func (c *cluster) waitFor(p *process, timeout time.Duration, what string, ok func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return
		}
		if p.exited() {
			c.t.Fatalf("%s exited (%v) before %s:\n%s", p.name, p.err, what, p.tail(30))
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not %s after %s:\n%s", p.name, what, timeout, p.tail(30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// instances gathers every instance's answer to $SRV.<verb>.<service>
// (PING, INFO or STATS): a plain request would take only the first.
func (c *cluster) instances(service, verb string) []json.RawMessage {
	inbox := nats.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		c.t.Fatalf("subscribing %s: %v", inbox, err)
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest("$SRV."+verb+"."+service, inbox, nil); err != nil {
		c.t.Fatalf("$SRV.%s.%s: %v", verb, service, err)
	}
	// Generous windows: on a loaded 2-core CI machine an instance busy with
	// requests may answer late, and a missed one fails the load checks.
	var out []json.RawMessage
	wait := 3 * time.Second
	for {
		msg, err := sub.NextMsg(wait)
		if err != nil {
			return out
		}
		wait = time.Second
		if len(msg.Data) == 0 { // a no-responders status, not an instance
			continue
		}
		out = append(out, json.RawMessage(msg.Data))
	}
}

// serviceStats is the part of micro's $SRV.STATS reply the test reads.
type serviceStats struct {
	ID        string `json:"id"`
	Endpoints []struct {
		Name        string `json:"name"`
		NumRequests int    `json:"num_requests"`
		NumErrors   int    `json:"num_errors"`
	} `json:"endpoints"`
}

// requestsByInstance is how many requests each instance of service served.
func (c *cluster) requestsByInstance(service string) map[string]int {
	out := map[string]int{}
	for _, raw := range c.instances(service, "STATS") {
		var s serviceStats
		if err := json.Unmarshal(raw, &s); err != nil {
			c.t.Fatalf("decoding $SRV.STATS.%s: %v", service, err)
		}
		for _, e := range s.Endpoints {
			out[s.ID] += e.NumRequests
		}
	}
	return out
}

func (c *cluster) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", gatewayPort, path)
}

// httpResult is one gateway answer.
type httpResult struct {
	Status int
	Body   []byte
}

func (r httpResult) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

// do calls the gateway; body, when not nil, is sent as JSON.
func (c *cluster) do(ctx context.Context, method, path string, body any) (httpResult, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return httpResult{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return httpResult{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpResult{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return httpResult{Status: resp.StatusCode, Body: raw}, err
}

// must calls the gateway and fails the test unless the status is want.
func (c *cluster) must(method, path string, body any, want int) httpResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := c.do(ctx, method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// waitStatus polls GET path until its "status" is want.
func (c *cluster) waitStatus(path, want string, timeout time.Duration) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]any
	for {
		r := c.must(http.MethodGet, path, nil, http.StatusOK)
		last = map[string]any{}
		r.decode(c.t, &last)
		if last["status"] == want {
			return last
		}
		if last["status"] == "failed" || time.Now().After(deadline) {
			c.t.Fatalf("%s: status %v, want %s (after up to %s): %s", path, last["status"], want, timeout, r.Body)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// python runs a script file with the repository's .venv interpreter.
func (c *cluster) python(env []string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.root, ".venv", "bin", "python"), args...)
	cmd.Dir = c.root
	cmd.Env = append(append(os.Environ(), env...), "GIT_PYTHON_REFRESH=quiet", "MLFLOW_ENABLE_ASYNC_LOGGING=false")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("python %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}
