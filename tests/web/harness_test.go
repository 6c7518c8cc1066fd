package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// The panel every test here drives: a team server (auth on) so sign-in,
// roles and filtered events are exercised, on ports away from tests/e2e.
const (
	panelAddr  = "127.0.0.1:15290"
	adminToken = "mlp_web-admin-token-for-tests"
)

var (
	panel    *stack.Stack
	repoRoot string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	home, err := os.MkdirTemp("", "mlpanel-web-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)
	cfg, err := stack.ConfigFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg.Home, cfg.Projects.Home = home, home
	cfg.NATSListen, cfg.MongoListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Gateway.Addr = panelAddr
	cfg.Gateway.Auth = true
	cfg.Gateway.AdminToken = adminToken
	cfg.Gateway.SpecCheck = true
	cfg.Projects.PublicURL = "http://" + panelAddr
	cfg.Projects.Ports = proc.Range{Lo: 15250, Hi: 15269}
	cfg.Projects.StopOnExit = true
	cfg.Projects.Mlflow = filepath.Join(repoRoot, ".venv", "bin", "mlflow")
	cfg.Deployer.Home = home
	cfg.Deployer.Mlflow = cfg.Projects.Mlflow
	cfg.Deployer.Ports = proc.Range{Lo: 15270, Hi: 15289}
	level := "warn"
	if v := os.Getenv("E2E_LOG"); v != "" {
		level = v
	}
	panel, err = stack.Start(context.Background(), cfg, boot.Logger(level))
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
	panel.Close()
	return code
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %q: %v", r.Body, err)
	}
}

// as calls the panel with a token ("" sends none); body is sent as JSON.
func as(t testing.TB, token, method, path string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, panel.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

func expect(t testing.TB, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
}

// newUser creates a user and returns a fresh token of theirs.
func newUser(t testing.TB, name string, admin bool) string {
	t.Helper()
	expect(t, as(t, adminToken, "POST", "/users", map[string]any{"name": name, "admin": admin}), 201)
	r := as(t, adminToken, "POST", "/users/"+name+"/tokens", map[string]string{"name": "web"})
	expect(t, r, 201)
	var tok struct{ Token string }
	r.JSON(t, &tok)
	return tok.Token
}

type project struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

func createProject(t testing.TB, token, name string) project {
	t.Helper()
	r := as(t, token, "POST", "/projects", map[string]string{"name": name})
	expect(t, r, 201)
	var p project
	r.JSON(t, &p)
	return p
}
