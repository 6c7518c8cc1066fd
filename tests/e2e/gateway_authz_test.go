package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sameAsMissing fails unless got is byte for byte what the panel answers
// for an entity that does not exist (missing, with its id swapped for
// the hidden one's).
func sameAsMissing(t *testing.T, what string, got, missing response, missingID, hiddenID string) {
	t.Helper()
	want := strings.ReplaceAll(string(missing.Body), `\"`+missingID+`\"`, `\"`+hiddenID+`\"`)
	if got.Status != http.StatusNotFound || got.Status != missing.Status || string(got.Body) != want {
		t.Errorf("%s: %d %s; for one that does not exist: %d %s", what, got.Status, got.Body, missing.Status, missing.Body)
	}
}

// TestTeamServerAuthorisesOnTheOwner: deployments are authorised on the
// project that owns them, a stranger cannot tell a hidden entity from a
// missing one, a viewer cannot write through the MLflow proxy however
// the path is dressed up, MLflow's redirects never show its address, and
// a user created again under a deleted user's name gets nothing of theirs.
func TestTeamServerAuthorisesOnTheOwner(t *testing.T) {
	tp := startTeamPanel(t)
	carol := tp.newUser(t, "carol", false)
	dave := tp.newUser(t, "dave", false)
	alice := tp.newUser(t, "alice", false)
	bob := tp.newUser(t, "bob", false)

	r := tp.as(t, carol, "POST", "/projects", map[string]string{"name": "owned"})
	expect(t, r, 201)
	var p project
	r.JSON(t, &p)
	expect(t, tp.as(t, dave, "POST", "/projects", map[string]string{"name": "daves"}), 201)
	expect(t, tp.as(t, carol, "PUT", "/projects/owned/members/alice", map[string]string{"role": "viewer"}), 200)
	expect(t, tp.as(t, carol, "PUT", "/projects/owned/members/bob", map[string]string{"role": "editor"}), 200)
	expect(t, tp.as(t, carol, "PUT", "/projects/owned/run", nil), 200)
	deadline := time.Now().Add(3 * time.Minute)
	for tp.projectStatus(t, "owned") != "running" {
		if time.Now().After(deadline) {
			t.Fatal("project owned did not start")
		}
		time.Sleep(300 * time.Millisecond)
	}
	out := python(t, `
import os, tempfile, numpy as np, mlflow
from sklearn.linear_model import LogisticRegression
mlflow.set_experiment("authz")
with mlflow.start_run() as run:
    path = os.path.join(tempfile.mkdtemp(), "keep.txt")
    open(path, "w").write("keep")
    mlflow.log_artifact(path, "files")
    model = LogisticRegression().fit(np.array([[0.], [1.], [2.], [3.]]), np.array([0, 0, 1, 1]))
    mlflow.sklearn.log_model(model, name="model", registered_model_name="authz-model")
    print("artifact_uri=" + run.info.artifact_uri)
`, "MLFLOW_TRACKING_URI="+p.MlflowURI, "MLFLOW_TRACKING_TOKEN="+bob)
	art := strings.TrimPrefix(lastValue(t, out, "artifact_uri="), "mlflow-artifacts:/")

	// Item 1 and 5: a deployment of carol's project.
	r = tp.as(t, carol, "POST", "/deployments", map[string]any{"project_id": "owned", "model_id": "authz-model", "version": "1"})
	expect(t, r, 202)
	var d deployment
	r.JSON(t, &d)
	defer tp.as(t, tp.admin, "DELETE", "/deployments/"+d.ID, nil)
	for _, c := range []struct{ method, suffix string }{
		{"GET", ""}, {"GET", "/ping"}, {"GET", "/logs"}, {"GET", "/stats"}, {"POST", "/predict"},
		{"PUT", "/stop"}, {"PUT", "/run"}, {"DELETE", ""},
	} {
		var body any
		if c.method == "POST" {
			body = map[string]any{"data": [][]float64{{1}}}
		}
		for _, hint := range []string{"", "?project_id=daves"} {
			got := tp.as(t, dave, c.method, "/deployments/"+d.ID+c.suffix+hint, body)
			missing := tp.as(t, dave, c.method, "/deployments/999999"+c.suffix+hint, body)
			sameAsMissing(t, "dave "+c.method+" /deployments/"+d.ID+c.suffix+hint, got, missing, "999999", d.ID)
		}
	}
	r = tp.as(t, alice, "GET", "/deployments/"+d.ID+"?project_id=daves", nil)
	expect(t, r, 200)
	expect(t, tp.as(t, alice, "PUT", "/deployments/"+d.ID+"/stop", nil), 403)
	if got := tp.deploymentStatus(t, d.ID); got == "stopped" || got == "stopping" || got == "" {
		t.Fatalf("deployment %s is %q after refused stops", d.ID, got)
	}
	// Creates: on the body's project; a query naming another is a 400.
	body := map[string]any{"project_id": "owned", "model_id": "authz-model"}
	expect(t, tp.as(t, dave, "POST", "/deployments?project_id=daves", body), 400)
	got := tp.as(t, dave, "POST", "/deployments", body)
	missing := tp.as(t, dave, "POST", "/deployments", map[string]any{"project_id": "nosuch", "model_id": "authz-model"})
	sameAsMissing(t, "dave creating in carol's project", got, missing, "nosuch", "owned")
	// Following an alias is authorised alike: a stranger does not learn
	// whether carol's model has the alias.
	sameAsMissing(t, "dave following an alias in carol's project",
		tp.as(t, dave, "POST", "/deployments", map[string]any{"project_id": "owned", "model_id": "authz-model", "version": "@nope"}),
		tp.as(t, dave, "POST", "/deployments", map[string]any{"project_id": "nosuch", "model_id": "authz-model", "version": "@nope"}), "nosuch", "owned")
	r = tp.as(t, bob, "POST", "/deployments", map[string]any{"project_id": "owned", "model_id": "authz-model", "version": "@nope"})
	expect(t, r, 400)
	if !strings.Contains(r.Message(), "nope") {
		t.Errorf("an editor following a missing alias got %q, want it named", r.Message())
	}
	sameAsMissing(t, "dave reading carol's project", tp.as(t, dave, "GET", "/projects/owned", nil),
		tp.as(t, dave, "GET", "/projects/nosuch", nil), "nosuch", "owned")
	sameAsMissing(t, "dave listing carol's experiments", tp.as(t, dave, "GET", "/experiments?project_id=owned", nil),
		tp.as(t, dave, "GET", "/experiments?project_id=nosuch", nil), "nosuch", "owned")
	// Lists hold what the caller may see.
	for who, want := range map[string]string{"dave": "0", "alice": "1"} {
		tok := map[string]string{"dave": dave, "alice": alice}[who]
		r := tp.as(t, tok, "GET", "/deployments", nil)
		expect(t, r, 200)
		if r.Header.Get("X-Total-Count") != want {
			t.Errorf("%s lists %s deployments: %s", who, r.Header.Get("X-Total-Count"), r.Body)
		}
	}
	// The audit log names the owner, not the hint.
	expect(t, tp.as(t, bob, "PUT", "/deployments/"+d.ID+"/stop?project_id=daves", nil), 200)
	r = tp.as(t, tp.admin, "GET", "/audit?user=bob", nil)
	var entries []struct {
		Path    string
		Project string `json:"project_id"`
	}
	r.JSON(t, &entries)
	seen := false
	for _, e := range entries {
		if e.Path == "/deployments/"+d.ID+"/stop" {
			seen = true
			if e.Project != p.ID {
				t.Errorf("audit of bob's stop records project %q, want the owner %s", e.Project, p.ID)
			}
		}
	}
	if !seen {
		t.Errorf("no audit entry for bob's stop: %s", r.Body)
	}

	// Item 2: a viewer writes nothing through the proxy, reads what MLflow reads.
	base := "/projects/owned/mlflow"
	for _, m := range []string{"PUT", "DELETE"} {
		for _, evil := range []string{"/evil/runs/search", "/files/keep.txt/experiments/search", "/files/keep.txt"} {
			path := base + "/api/2.0/mlflow-artifacts/artifacts/" + art + evil
			expect(t, tp.as(t, alice, m, path, map[string]string{"x": "y"}), 403)
		}
	}
	expect(t, tp.as(t, alice, "GET", base+"/api/2.0/mlflow-artifacts/artifacts/"+art+"/files/keep.txt", nil), 200)
	if r := tp.as(t, bob, "GET", base+"/api/2.0/mlflow-artifacts/artifacts/"+art+"/evil/runs/search", nil); r.Status == 200 {
		t.Errorf("the viewer's upload reached the artifact store: %s", r.Body)
	}
	expect(t, tp.as(t, alice, "POST", base+"/api/2.0/mlflow/registered-models/get-latest-versions", map[string]any{"name": "authz-model"}), 200)
	r = tp.as(t, alice, "POST", base+"/graphql", map[string]any{"query": `query { mlflowSearchRuns(input: {experimentIds: ["0"]}) { runs { info { runId } } } }`})
	expect(t, r, 200)
	expect(t, tp.as(t, alice, "POST", base+"/api/2.0/mlflow/experiments/create", map[string]string{"name": "nope"}), 403)

	// Item 6: MLflow's redirects never show its address. A '//'-path is no
	// route of MLflow's, so it takes an editor to reach MLflow with one.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	redirects := 0
	for _, path := range []string{base + "//api/2.0/mlflow/experiments/search?max_results=5", base + "//", base + "//static-files/"} {
		req, _ := http.NewRequest("GET", tp.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+bob)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw := make([]byte, 64<<10)
		n, _ := resp.Body.Read(raw)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		t.Logf("GET %s: %d Location %q", path, resp.StatusCode, loc)
		for _, leak := range []string{":1514", "127.0.0.1:151"} {
			if strings.Contains(loc, leak) || strings.Contains(string(raw[:n]), leak) {
				t.Errorf("GET %s leaks the tracking server: %d Location %q body %q", path, resp.StatusCode, loc, raw[:n])
			}
		}
		if loc != "" && !strings.HasPrefix(loc, "/projects/owned/mlflow/") {
			t.Errorf("GET %s redirects to %q, outside the project's gateway path", path, loc)
		}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			redirects++
		}
	}
	if redirects == 0 {
		t.Error("no '//'-path was redirected: the test proves nothing about redirects")
	}

	// Issue 10: a browser signs in with a token and uses the MLflow UI and
	// the API with the cookie; cookie writes need the CSRF token.
	form := strings.NewReader("token=" + alice + "&next=/projects/owned/mlflow/")
	req, _ := http.NewRequest("POST", tp.URL+"/signin", form)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session, csrf *http.Cookie
	for _, ck := range resp.Cookies() {
		switch ck.Name {
		case "mlpanel_session":
			session = ck
		case "mlpanel_csrf":
			csrf = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/projects/owned/mlflow/" || session == nil || !session.HttpOnly || csrf == nil {
		t.Fatalf("sign-in: %d Location %q cookies %v", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	browser := func(method, path, body string, header ...string) response {
		req, _ := http.NewRequest(method, tp.URL+path, strings.NewReader(body))
		req.AddCookie(session)
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw := new(strings.Builder)
		_, _ = io.Copy(raw, resp.Body)
		return response{Status: resp.StatusCode, Header: resp.Header, Body: []byte(raw.String())}
	}
	if r := browser("GET", "/projects/owned/mlflow/", ""); r.Status != 200 || !strings.Contains(string(r.Body), "<") {
		t.Errorf("the MLflow UI with the cookie: %d %.200s", r.Status, r.Body)
	}
	expect(t, browser("GET", "/projects/owned", ""), 200)
	search := `{"experiment_ids": ["0"]}`
	expect(t, browser("POST", "/projects/owned/mlflow/api/2.0/mlflow/runs/search", search), 403)
	expect(t, browser("POST", "/projects/owned/mlflow/api/2.0/mlflow/runs/search", search, "X-CSRF-Token", csrf.Value), 200)
	expect(t, browser("POST", "/projects/owned/mlflow/api/2.0/mlflow/experiments/create", `{"name": "x"}`, "X-CSRF-Token", csrf.Value), 403) // a viewer still
	req, _ = http.NewRequest("OPTIONS", tp.URL+"/projects/owned/mlflow/api/2.0/mlflow/runs/search", nil)
	req.Header.Set("Origin", tp.URL)
	req.Header.Set("Access-Control-Request-Method", "POST")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != tp.URL {
		t.Errorf("a same-origin preflight without a token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	expect(t, browser("POST", "/signout", ""), 403) // a cookie write without the CSRF token
	expect(t, browser("POST", "/signout", "", "X-CSRF-Token", csrf.Value), 200)
	expect(t, browser("GET", "/projects/owned", ""), 401)

	// Item 4: a user created again under carol's name gets nothing of hers.
	expect(t, tp.as(t, tp.admin, "DELETE", "/users/carol", nil), 200)
	expect(t, tp.as(t, carol, "GET", "/me", nil), 401)
	carol2 := tp.newUser(t, "carol", false)
	sameAsMissing(t, "the new carol reading the old one's project", tp.as(t, carol2, "GET", "/projects/owned", nil),
		tp.as(t, carol2, "GET", "/projects/nosuch", nil), "nosuch", "owned")
	expect(t, tp.as(t, carol2, "PUT", "/projects/owned/terminate", nil), 404)
	r = tp.as(t, carol2, "GET", "/projects", nil)
	expect(t, r, 200)
	if r.Header.Get("X-Total-Count") != "0" {
		t.Errorf("the new carol lists %s", r.Body)
	}
	r = tp.as(t, tp.admin, "GET", "/projects/owned/members", nil)
	var ms []struct{ User, Role string }
	r.JSON(t, &ms)
	for _, m := range ms {
		if m.User == "carol" {
			t.Errorf("the new carol is listed as %s of owned: %s", m.Role, r.Body)
		}
	}
	expect(t, tp.as(t, carol2, "GET", "/me", nil), 200)
}

func (tp *teamPanel) deploymentStatus(t *testing.T, id string) string {
	r := tp.as(t, tp.admin, "GET", "/deployments/"+id, nil)
	var d deployment
	r.JSON(t, &d)
	return d.Status
}
