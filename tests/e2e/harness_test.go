// Package e2e drives the real gateway of a whole panel started in this
// process (embedded NATS and FerretDB, every service), with real `mlflow
// server` and `mlflow models serve` processes from the repository's
// .venv and real Python MLflow clients. Nothing here is faked.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// panel is the stack every test in this package drives.
var (
	panel    *stack.Stack
	panelCfg stack.Config
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	home, err := os.MkdirTemp("", "mlpanel-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)

	if panelCfg, err = stack.ConfigFromEnv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	panelCfg.Home = home
	panelCfg.Projects.Home = home
	panelCfg.NATSListen = "127.0.0.1:0"
	panelCfg.MongoListen = "127.0.0.1:0"
	panelCfg.Gateway.Addr = "127.0.0.1:0"
	// Ports away from a panel the developer may be running.
	panelCfg.Projects.Ports = proc.Range{Lo: 15100, Hi: 15139}
	if v := os.Getenv("E2E_PROJECT_PORTS"); v != "" { // for parallel runs on one machine
		if panelCfg.Projects.Ports, err = proc.ParseRange(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	panelCfg.Projects.Mlflow = filepath.Join(repoRoot, ".venv", "bin", "mlflow")
	// Stopping the projects service leaves its servers running, as a crash
	// would, so tests can prove adoption; cleanup terminates them.
	panelCfg.Projects.StopOnExit = false
	configureServices(&panelCfg, home)

	level := "warn"
	if os.Getenv("E2E_LOG") != "" {
		level = os.Getenv("E2E_LOG")
	}
	ctx := context.Background()
	panel, err = stack.Start(ctx, panelCfg, boot.Logger(level))
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the panel:", err)
		return 1
	}
	code := m.Run()
	if v := panel.Gateway.SpecViolations(); len(v) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d requests or responses did not match the OpenAPI document:\n%s\n", len(v), strings.Join(v, "\n"))
		if code == 0 {
			code = 1
		}
	}
	terminateAll()
	panel.Close()
	return code
}

// configureServices is where other services' test files adjust their
// part of the configuration (set in their init functions).
var serviceConfigurers []func(cfg *stack.Config, home string)

func configureServices(cfg *stack.Config, home string) {
	for _, f := range serviceConfigurers {
		f(cfg, home)
	}
}

// response is one HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v and fails the test if it cannot.
func (r response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %q: %v", r.Body, err)
	}
}

// Message is the "message" of an error body.
func (r response) Message() string {
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Message
}

// call sends a request to the gateway. body may be nil, a string (sent
// as is, with contentType), or anything else (sent as JSON).
func call(t testing.TB, method, path string, body any, contentType ...string) response {
	t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	if len(contentType) > 0 {
		ct = contentType[0]
	}
	req, err := http.NewRequest(method, panel.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// expect fails unless the response has the status.
func expect(t testing.TB, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
}

// project is the part of a project the tests read.
type project struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Status       string `json:"status"`
	DesiredState string `json:"desiredState"`
	Port         int    `json:"port"`
	MlflowURI    string `json:"mlflowUri"`
	InternalURL  string `json:"internalUrl"`
	Path         string `json:"path"`
	Pid          int    `json:"pid"`
	RestartCount int    `json:"restartCount"`
	LastError    string `json:"lastError"`
}

func createProject(t testing.TB, name string) project {
	t.Helper()
	r := call(t, http.MethodPost, "/projects", map[string]string{"name": name, "description": "e2e " + name})
	expect(t, r, http.StatusCreated)
	var p project
	r.JSON(t, &p)
	return p
}

func getProject(t testing.TB, ref string) project {
	t.Helper()
	r := call(t, http.MethodGet, "/projects/"+ref, nil)
	expect(t, r, http.StatusOK)
	var p project
	r.JSON(t, &p)
	return p
}

// waitProject polls until the project has status, or fails after timeout.
func waitProject(t testing.TB, ref, status string, timeout time.Duration) project {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var p project
	for time.Now().Before(deadline) {
		p = getProject(t, ref)
		if p.Status == status {
			return p
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("project %s is %s after %s, want %s (last error %q)", ref, p.Status, timeout, status, p.LastError)
	return p
}

// runningProject creates a project and waits until its server answers.
func runningProject(t testing.TB, name string) project {
	t.Helper()
	p := createProject(t, name)
	expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	return waitProject(t, p.ID, "running", 3*time.Minute)
}

// python runs a script with the repository's .venv interpreter and
// returns its standard output; env adds variables.
func python(t testing.TB, script string, env ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, ".venv", "bin", "python"), "-c", script)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "GIT_PYTHON_REFRESH=quiet", "MLFLOW_ENABLE_ASYNC_LOGGING=false")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("python: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	return out.String()
}

// mlflowAPI calls a project's MLflow REST API directly.
// mlflowTokens holds, by gateway URL, the token mlflowAPI sends to a
// panel with auth on, where mlflowUri is the gateway's proxy.
var mlflowTokens sync.Map

func mlflowAPI(t testing.TB, p project, method, path string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	return mlflowRaw(t, p, method, "/api/2.0/mlflow/"+path, rd)
}

// mlflowRaw is one call to a path of the project's MLflow, with the
// panel's token where mlflowTokens has one.
func mlflowRaw(t testing.TB, p project, method, path string, rd io.Reader) response {
	t.Helper()
	req, _ := http.NewRequest(method, p.MlflowURI+path, rd)
	req.Header.Set("Content-Type", "application/json")
	mlflowTokens.Range(func(k, v any) bool {
		if strings.HasPrefix(p.MlflowURI, k.(string)+"/") {
			req.Header.Set("Authorization", "Bearer "+v.(string))
		}
		return true
	})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("MLflow %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// terminateAll stops every project's server through the API, so no
// process outlives the test binary.
func terminateAll() {
	resp, err := http.Get(panel.URL + "/projects")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	var ps []project
	_ = json.NewDecoder(resp.Body).Decode(&ps)
	for _, p := range ps {
		req, _ := http.NewRequest(http.MethodPut, panel.URL+"/projects/"+p.ID+"/terminate", nil)
		if r, err := http.DefaultClient.Do(req); err == nil {
			r.Body.Close()
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoi(s string) (int, error) { return strconv.Atoi(s) }

// assertSpec fails t if a second panel's traffic broke the OpenAPI
// document (the shared panel is checked in TestMain).
func assertSpec(t *testing.T, s *stack.Stack) {
	if v := s.Gateway.SpecViolations(); len(v) > 0 {
		t.Errorf("%d requests or responses did not match the OpenAPI document:\n%s", len(v), strings.Join(v, "\n"))
	}
}
