package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// teamPanel is a second panel set up as a team server: auth on, a public
// URL, tracking servers reached only through the gateway's proxy.
type teamPanel struct {
	*stack.Stack
	admin     string
	mutations []string // "METHOD path status" of every mutating call the test made
}

const teamAddr = "127.0.0.1:15190"

func startTeamPanel(t *testing.T) *teamPanel {
	t.Helper()
	cfg := panelCfg
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.Ports = proc.Range{Lo: 15141, Hi: 15149}
	cfg.Projects.StopOnExit = true
	cfg.Projects.PublicURL = "http://" + teamAddr
	cfg.Gateway.Addr = teamAddr
	cfg.Gateway.Auth = true
	cfg.Gateway.AdminToken = "mlp_admin-token-for-tests"
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); assertSpec(t, s) })
	return &teamPanel{Stack: s, admin: cfg.Gateway.AdminToken}
}

// as calls the team panel with a token ("" sends none).
func (tp *teamPanel) as(t *testing.T, token, method, path string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, tp.URL+path, rd)
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
	if method != http.MethodGet && method != http.MethodHead {
		tp.mutations = append(tp.mutations, fmt.Sprintf("%s %s %d", method, req.URL.Path, resp.StatusCode))
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

func (tp *teamPanel) newUser(t *testing.T, name string, admin bool) string {
	t.Helper()
	expect(t, tp.as(t, tp.admin, "POST", "/users", map[string]any{"name": name, "admin": admin}), 201)
	r := tp.as(t, tp.admin, "POST", "/users/"+name+"/tokens", map[string]string{"name": "e2e"})
	expect(t, r, 201)
	var tok struct{ Token string }
	r.JSON(t, &tok)
	if !strings.HasPrefix(tok.Token, "mlp_") {
		t.Fatalf("token %q", tok.Token)
	}
	return tok.Token
}

// TestTeamServer: tokens, the role matrix, narrowed lists, the audit log
// and the stock mlflow client through the proxy with a token.
func TestTeamServer(t *testing.T) {
	tp := startTeamPanel(t)

	// 401 without a token or with a bad one; health and docs stay open.
	r := tp.as(t, "", "GET", "/projects", nil)
	expect(t, r, 401)
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(r.Message(), "MLFLOW_TRACKING_TOKEN") {
		t.Fatalf("401 without a token: header %q message %q", r.Header.Get("WWW-Authenticate"), r.Message())
	}
	expect(t, tp.as(t, "mlp_wrong", "GET", "/projects", nil), 401)
	expect(t, tp.as(t, "", "GET", "/healthz", nil), 200)

	carol := tp.newUser(t, "carol", false)
	alice := tp.newUser(t, "alice", false)
	bob := tp.newUser(t, "bob", false)
	dave := tp.newUser(t, "dave", false)

	// Tokens are shown once: listing shows no secret.
	r = tp.as(t, tp.admin, "GET", "/users/alice/tokens", nil)
	expect(t, r, 200)
	if strings.Contains(string(r.Body), alice) || strings.Contains(string(r.Body), "hash") {
		t.Fatalf("token list leaks the secret or its hash: %s", r.Body)
	}

	// carol creates the project and so owns it; she shares it.
	r = tp.as(t, carol, "POST", "/projects", map[string]string{"name": "teamproj"})
	expect(t, r, 201)
	var p project
	r.JSON(t, &p)
	if p.MlflowURI != "http://"+teamAddr+"/projects/teamproj/mlflow" {
		t.Fatalf("with MLPANEL_PUBLIC_URL set, mlflowUri is %q", p.MlflowURI)
	}
	expect(t, tp.as(t, carol, "PUT", "/projects/teamproj/members/alice", map[string]string{"role": "viewer"}), 200)
	expect(t, tp.as(t, carol, "PUT", "/projects/teamproj/members/bob", map[string]string{"role": "editor"}), 200)
	expect(t, tp.as(t, carol, "PUT", "/projects/teamproj/members/bob", map[string]string{"role": "boss"}), 400)
	expect(t, tp.as(t, carol, "PUT", "/projects/teamproj/members/nobody", map[string]string{"role": "viewer"}), 404)
	r = tp.as(t, alice, "GET", "/projects/teamproj/members", nil)
	expect(t, r, 200)
	if r.Header.Get("X-Total-Count") != "3" {
		t.Fatalf("members: %s (total %s), want carol, alice and bob", r.Body, r.Header.Get("X-Total-Count"))
	}

	expect(t, tp.as(t, carol, "PUT", "/projects/teamproj/run", nil), 200)
	deadline := time.Now().Add(3 * time.Minute)
	for tp.projectStatus(t, "teamproj") != "running" {
		if time.Now().After(deadline) {
			t.Fatal("teamproj did not start")
		}
		time.Sleep(300 * time.Millisecond)
	}

	// The role matrix: each class of endpoint for each kind of caller.
	type cell struct {
		method, path string
		body         any
		want         map[string]int // by caller; 0 means "any status but 401 and 403"
	}
	callers := map[string]string{"admin": tp.admin, "carol": carol, "bob": bob, "alice": alice, "dave": dave}
	matrix := []cell{
		{"GET", "/projects/teamproj", nil, map[string]int{"admin": 200, "carol": 200, "bob": 200, "alice": 200, "dave": 404}},
		{"GET", "/projects/teamproj/logs?lines=5", nil, map[string]int{"admin": 200, "carol": 200, "bob": 200, "alice": 200, "dave": 404}},
		{"GET", "/experiments?project_id=teamproj", nil, map[string]int{"admin": 0, "carol": 0, "bob": 0, "alice": 0, "dave": 404}},
		{"POST", "/experiments", map[string]string{"project_id": "teamproj", "name": "from-matrix"}, map[string]int{"alice": 403, "dave": 404, "bob": 0}},
		{"GET", "/deployments?project_id=teamproj", nil, map[string]int{"admin": 0, "alice": 0, "dave": 404}},
		{"PUT", "/projects/teamproj", map[string]string{"description": "edited"}, map[string]int{"alice": 403, "bob": 403, "dave": 404, "carol": 200, "admin": 200}},
		{"PUT", "/projects/teamproj/members/dave", map[string]string{"role": "viewer"}, map[string]int{"alice": 403, "bob": 403}},
		{"GET", "/users", nil, map[string]int{"admin": 200, "carol": 403, "alice": 403}},
		{"GET", "/audit", nil, map[string]int{"admin": 200, "bob": 403}},
		{"POST", "/users/bob/tokens", map[string]string{"name": "mine"}, map[string]int{"bob": 201, "alice": 403, "admin": 201}},
		{"GET", "/me", nil, map[string]int{"alice": 200, "admin": 200}},
	}
	for _, c := range matrix {
		for who, want := range c.want {
			r := tp.as(t, callers[who], c.method, c.path, c.body)
			switch {
			case want == 0 && (r.Status == 401 || r.Status == 403):
				t.Errorf("%s %s as %s: %d %s, want it allowed", c.method, c.path, who, r.Status, r.Body)
			case want != 0 && r.Status != want:
				t.Errorf("%s %s as %s: %d %s, want %d", c.method, c.path, who, r.Status, r.Body, want)
			}
		}
	}

	// Lists show only what the caller may see.
	expect(t, tp.as(t, tp.admin, "POST", "/projects", map[string]string{"name": "adminonly"}), 201)
	for who, want := range map[string]string{"dave": "0", "alice": "1", "admin": "2"} {
		r := tp.as(t, callers[who], "GET", "/projects", nil)
		expect(t, r, 200)
		if r.Header.Get("X-Total-Count") != want {
			t.Errorf("%s sees %s projects (%s), want %s", who, r.Header.Get("X-Total-Count"), r.Body, want)
		}
	}

	// The stock mlflow client through the proxy with a token.
	script := `
import os, tempfile, numpy as np, mlflow
from sklearn.linear_model import LogisticRegression
mlflow.set_experiment("remote")
with mlflow.start_run() as run:
    mlflow.log_param("where", "remote")
    path = os.path.join(tempfile.mkdtemp(), "note.txt")
    open(path, "w").write("uploaded through the panel")
    mlflow.log_artifact(path, "files")
    model = LogisticRegression().fit(np.array([[0.], [1.], [2.], [3.]]), np.array([0, 0, 1, 1]))
    mlflow.sklearn.log_model(model, name="model", registered_model_name="remote-model")
    print("run_id=" + run.info.run_id)
`
	out := python(t, script, "MLFLOW_TRACKING_URI="+p.MlflowURI, "MLFLOW_TRACKING_TOKEN="+bob)
	runID := lastValue(t, out, "run_id=")
	r = tp.as(t, alice, "GET", "/projects/teamproj/mlflow/api/2.0/mlflow/registered-models/get?name=remote-model", nil)
	expect(t, r, 200)
	r = tp.as(t, alice, "GET", "/projects/teamproj/mlflow/api/2.0/mlflow/runs/get?run_id="+runID, nil)
	expect(t, r, 200)
	var run struct {
		Run struct {
			Info struct {
				ArtifactURI string `json:"artifact_uri"`
			} `json:"info"`
		} `json:"run"`
	}
	r.JSON(t, &run)
	art := strings.TrimPrefix(run.Run.Info.ArtifactURI, "mlflow-artifacts:/")
	r = tp.as(t, alice, "GET", "/projects/teamproj/mlflow/api/2.0/mlflow-artifacts/artifacts/"+art+"/files/note.txt", nil)
	if r.Status != 200 || string(r.Body) != "uploaded through the panel" {
		t.Fatalf("artifact through the proxy: %d %q", r.Status, r.Body)
	}
	// A viewer reads but cannot write; nobody gets in without a token.
	expect(t, tp.as(t, alice, "POST", "/projects/teamproj/mlflow/api/2.0/mlflow/runs/search", map[string]any{"experiment_ids": []string{"0"}}), 200)
	expect(t, tp.as(t, alice, "POST", "/projects/teamproj/mlflow/api/2.0/mlflow/experiments/create", map[string]string{"name": "nope"}), 403)
	expect(t, tp.as(t, "", "GET", "/projects/teamproj/mlflow/api/2.0/mlflow/experiments/search?max_results=5", nil), 401)
	if out, err := pythonMayFail(script, "MLFLOW_TRACKING_URI="+p.MlflowURI, "MLFLOW_TRACKING_TOKEN="+alice); err == nil {
		t.Fatalf("a viewer logged a run through the proxy:\n%s", out)
	} else if !strings.Contains(out, "PERMISSION_DENIED") {
		t.Fatalf("a viewer's mlflow client failed without a 403:\n%s", out)
	}
	if out, err := pythonMayFail(script, "MLFLOW_TRACKING_URI="+p.MlflowURI); err == nil || !strings.Contains(out, "UNAUTHENTICATED") {
		t.Fatalf("the mlflow client without a token: err %v\n%s", err, out)
	}

	// Every mutating call is in the audit log: who, what, which project, result.
	r = tp.as(t, tp.admin, "GET", "/audit?project_id=teamproj&user=carol", nil)
	expect(t, r, 200)
	var entries []struct {
		User, Method, Path, Route string
		Project                   string `json:"project_id"`
		Status                    int
	}
	r.JSON(t, &entries)
	want := map[string]bool{"PUT /projects/teamproj/run 200": false, "PUT /projects/teamproj/members/alice 200": false, "PUT /projects/teamproj 200": false}
	for _, e := range entries {
		if e.User != "carol" || e.Project != p.ID {
			t.Fatalf("filtered audit entry %+v is not carol's on project %s", e, p.ID)
		}
		want[e.Method+" "+e.Path+" "+itoa(e.Status)] = true
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("audit log lacks %q: %s", k, r.Body)
		}
	}
	r = tp.as(t, tp.admin, "GET", "/audit?user=alice&project_id=teamproj", nil)
	r.JSON(t, &entries)
	refused := false
	for _, e := range entries {
		if e.Status == 403 && e.Method == "POST" {
			refused = true
		}
	}
	if !refused {
		t.Errorf("alice's refused writes are not audited: %s", r.Body)
	}
	r = tp.as(t, tp.admin, "GET", "/audit?since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z", nil)
	expect(t, r, 200)
	if r.Header.Get("X-Total-Count") != "0" {
		t.Errorf("audit for the year 2000: %s", r.Body)
	}
	expect(t, tp.as(t, tp.admin, "GET", "/audit?since=yesterday", nil), 400)

	// Each mutating call this test made, refused ones included, has its entry.
	r = tp.as(t, tp.admin, "GET", "/audit?_end=100000", nil)
	expect(t, r, 200)
	r.JSON(t, &entries)
	logged := map[string]int{}
	for _, e := range entries {
		logged[fmt.Sprintf("%s %s %d", e.Method, e.Path, e.Status)]++
	}
	for _, m := range tp.mutations {
		if logged[m] == 0 {
			t.Errorf("no audit entry for %s", m)
		}
		logged[m]--
	}

	// Revoking a token locks its holder out at once.
	r = tp.as(t, tp.admin, "GET", "/users/dave/tokens", nil)
	var toks []struct{ ID string }
	r.JSON(t, &toks)
	expect(t, tp.as(t, tp.admin, "DELETE", "/users/dave/tokens/"+toks[0].ID, nil), 200)
	expect(t, tp.as(t, dave, "GET", "/me", nil), 401)
}

func (tp *teamPanel) projectStatus(t *testing.T, ref string) string {
	r := tp.as(t, tp.admin, "GET", "/projects/"+ref, nil)
	var p project
	r.JSON(t, &p)
	return p.Status
}

// pythonMayFail runs a script that is expected to fail and returns its
// combined output.
func pythonMayFail(script string, env ...string) (string, error) {
	cmd := exec.Command(filepath.Join(repoRoot, ".venv", "bin", "python"), "-c", script)
	cmd.Env = append(append(cmd.Environ(), env...), "GIT_PYTHON_REFRESH=quiet", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
