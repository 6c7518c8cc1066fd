package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/embedded"
)

// authWorld is a gateway with auth on over real NATS and a real FerretDB,
// with the projects and deployer services answered at their NATS contract
// by small stand-ins that keep their records in memory (the e2e suite
// runs the real ones).
type authWorld struct {
	t     testing.TB
	g     *Gateway
	e     *gin.Engine
	admin string

	mu       sync.Mutex
	projects []projectInfo
	deploys  map[string]string // deployment id -> project id
	calls    []string          // "op id" of every deployer call but get
	created  []string          // project_id of each deployer create
}

func startFerret(t testing.TB) *mongo.Database {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f, err := embedded.StartFerretDB(ctx, t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(f.URI()))
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()); f.Close() })
	return client.Database("mlpanel")
}

func newAuthWorld(t testing.TB) *authWorld {
	t.Helper()
	nc := startNATS(t)
	db := startFerret(t)
	w := &authWorld{t: t, admin: "mlp_admin-for-unit-tests", deploys: map[string]string{}}
	find := func(ref string) (projectInfo, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, p := range w.projects {
			if p.ID == ref || p.Name == ref {
				return p, nil
			}
		}
		return projectInfo{}, projectNotFound(ref) // the projects service's own words
	}
	_, err := events.AddService(nc, "projects", "0.0.0", "stand-in", 5*time.Second, map[string]events.Operation{
		"get": func(_ context.Context, r events.Request) (any, error) { return find(r.Param("id")) },
		"create": func(_ context.Context, r events.Request) (any, error) {
			var in struct{ Name string }
			_ = r.DecodeBody(&in)
			w.mu.Lock()
			defer w.mu.Unlock()
			p := projectInfo{ID: strconv.Itoa(len(w.projects) + 1), Name: in.Name, Status: "terminated",
				CreatedBy: r.Caller, CreatedByID: r.CallerID, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
			w.projects = append(w.projects, p)
			return p, nil
		},
		"list": func(_ context.Context, r events.Request) (any, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			var l events.List[projectInfo]
			for _, p := range w.projects {
				if r.Sees(p.ID, creatorOf(p)) {
					l.Items = append(l.Items, p)
				}
			}
			l.Total = len(l.Items)
			return l, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	notFound := func(id string) error {
		return events.Errorf(http.StatusNotFound, "deployment %q not found: list deployments with GET /deployments", id)
	}
	byID := func(op string) events.Operation {
		return func(_ context.Context, r events.Request) (any, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			id := r.Param("id")
			p, ok := w.deploys[id]
			if !ok {
				return nil, notFound(id)
			}
			if op != "get" {
				w.calls = append(w.calls, op+" "+id)
			}
			return map[string]any{"id": id, "project_id": p, "status": "stopped"}, nil
		}
	}
	_, err = events.AddService(nc, "deployer", "0.0.0", "stand-in", 5*time.Second, map[string]events.Operation{
		"get": byID("get"), "run": byID("run"), "stop": byID("stop"), "delete": byID("delete"),
		"ping": byID("ping"), "logs": byID("logs"),
		"create": func(_ context.Context, r events.Request) (any, error) {
			var in struct {
				ProjectID string `json:"project_id"`
			}
			_ = r.DecodeBody(&in)
			if in.ProjectID == "" {
				in.ProjectID = r.Query["project_id"] // as the deployer does
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			w.created = append(w.created, in.ProjectID)
			return map[string]any{"id": "100", "project_id": in.ProjectID}, nil
		},
		"list": func(_ context.Context, r events.Request) (any, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			var l events.List[map[string]string]
			for id, p := range w.deploys {
				if r.Sees(p, events.Creator{}) && (r.Query["project_id"] == "" || r.Query["project_id"] == p) {
					l.Items = append(l.Items, map[string]string{"id": id, "project_id": p})
				}
			}
			l.Total = len(l.Items)
			return l, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.g, w.e, _ = testGateway(t, Config{Auth: true, AdminToken: w.admin}, nc, db)
	w.g.stderr = &bytes.Buffer{}
	if err := w.g.prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.g.projects.Stop)
	return w
}

type answer struct {
	status int
	body   string
}

func (w *authWorld) do(token, method, path string, body any) answer {
	w.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	} else {
		rd = bytes.NewReader(nil)
	}
	rec := serve(w.e, method, path, rd, "Authorization", "Bearer "+token, "Content-Type", "application/json")
	return answer{rec.Code, rec.Body.String()}
}

func (w *authWorld) must(a answer, status int) answer {
	w.t.Helper()
	if a.status != status {
		w.t.Fatalf("status %d %s, want %d", a.status, a.body, status)
	}
	return a
}

// user creates a user and returns a token of theirs.
func (w *authWorld) user(name string) string {
	w.t.Helper()
	w.must(w.do(w.admin, "POST", "/users", map[string]any{"name": name}), 201)
	var tok struct{ Token string }
	_ = json.Unmarshal([]byte(w.must(w.do(w.admin, "POST", "/users/"+name+"/tokens", map[string]any{"name": "t"}), 201).body), &tok)
	return tok.Token
}

func (w *authWorld) project(token, name string) projectInfo {
	w.t.Helper()
	var p projectInfo
	_ = json.Unmarshal([]byte(w.must(w.do(token, "POST", "/projects", map[string]any{"name": name}), 201).body), &p)
	return p
}

// TestDeploymentsAuthorisedOnTheirProject: every /deployments/{id} call is
// decided on the project that owns the deployment, whatever project_id the
// caller adds; a stranger gets the answer for a deployment that does not
// exist; creates are decided on the body's project.
func TestDeploymentsAuthorisedOnTheirProject(t *testing.T) {
	w := newAuthWorld(t)
	carol, dave, alice := w.user("carol"), w.user("dave"), w.user("alice")
	theirs := w.project(carol, "carolproj")
	mine := w.project(dave, "daveproj")
	w.must(w.do(carol, "PUT", "/projects/carolproj/members/alice", map[string]string{"role": "viewer"}), 200)
	w.mu.Lock()
	w.deploys["3"] = theirs.ID
	w.mu.Unlock()

	for _, c := range []struct{ method, suffix string }{
		{"GET", ""}, {"DELETE", ""}, {"PUT", "/run"}, {"PUT", "/stop"},
		{"GET", "/ping"}, {"GET", "/logs"}, {"POST", "/predict"},
	} {
		for _, hint := range []string{"", "?project_id=" + mine.ID, "?project_id=daveproj"} {
			got := w.do(dave, c.method, "/deployments/3"+c.suffix+hint, nil)
			none := w.do(dave, c.method, "/deployments/999"+c.suffix+hint, nil)
			want := strings.ReplaceAll(none.body, `\"999\"`, `\"3\"`)
			if got.status != 404 || got.status != none.status || got.body != want {
				t.Errorf("dave %s /deployments/3%s%s: %d %s; for a deployment that does not exist: %d %s",
					c.method, c.suffix, hint, got.status, got.body, none.status, none.body)
			}
		}
	}
	// A viewer of the owning project reads it, whatever she names, but
	// may not stop it.
	w.must(w.do(alice, "GET", "/deployments/3?project_id="+mine.ID, nil), 200)
	w.must(w.do(alice, "PUT", "/deployments/3/stop", nil), 403)
	w.must(w.do(carol, "PUT", "/deployments/3/stop?project_id="+mine.ID, nil), 200)
	w.mu.Lock()
	calls := append([]string(nil), w.calls...)
	w.mu.Unlock()
	if len(calls) != 1 || calls[0] != "stop 3" {
		t.Errorf("the deployer was asked %v; only carol's stop may reach it", calls)
	}

	// The audit log records the owning project, not the hint.
	var entries []struct {
		Path    string
		Project string `json:"project_id"`
		Status  int
	}
	_ = json.Unmarshal([]byte(w.must(w.do(w.admin, "GET", "/audit?user=carol", nil), 200).body), &entries)
	found := false
	for _, e := range entries {
		if e.Path == "/deployments/3/stop" {
			found = true
			if e.Project != theirs.ID {
				t.Errorf("audit of carol's stop records project %q, want the owner %q", e.Project, theirs.ID)
			}
		}
	}
	if !found {
		t.Errorf("no audit entry for carol's stop: %+v", entries)
	}

	// Creates: decided on the body's project; a query that names another
	// project is a contradiction.
	a := w.do(dave, "POST", "/deployments", map[string]string{"project_id": theirs.ID, "model_id": "m"})
	none := w.do(dave, "POST", "/deployments", map[string]string{"project_id": "77", "model_id": "m"})
	if a.status != 404 || a.body != strings.ReplaceAll(none.body, `\"77\"`, fmt.Sprintf(`\"%s\"`, theirs.ID)) {
		t.Errorf("dave creating in carol's project: %d %s; in one that does not exist: %s", a.status, a.body, none.body)
	}
	// Her project in the body, his in the query: refused the same way
	// as with a project that does not exist.
	a = w.do(dave, "POST", "/deployments?project_id="+mine.ID, map[string]string{"project_id": theirs.ID, "model_id": "m"})
	none = w.do(dave, "POST", "/deployments?project_id="+mine.ID, map[string]string{"project_id": "77", "model_id": "m"})
	if a.status != 400 || a.body != strings.ReplaceAll(none.body, `\"77\"`, fmt.Sprintf(`\"%s\"`, theirs.ID)) {
		t.Errorf("query and body disagree: %d %s; with a body project that does not exist: %s", a.status, a.body, none.body)
	}
	w.must(w.do(dave, "POST", "/deployments?project_id=carolproj", map[string]string{"project_id": mine.ID, "model_id": "m"}), 400)
	w.must(w.do(dave, "POST", "/deployments?project_id=daveproj", map[string]string{"project_id": mine.ID, "model_id": "m"}), 202)
	w.must(w.do(dave, "POST", "/deployments?project_id="+mine.ID, map[string]string{"model_id": "m"}), 202)
	w.must(w.do(w.admin, "POST", "/deployments?project_id="+mine.ID, map[string]string{"project_id": theirs.ID, "model_id": "m"}), 400)
	w.mu.Lock()
	created := append([]string(nil), w.created...)
	w.mu.Unlock()
	if len(created) != 2 || created[0] != mine.ID || created[1] != mine.ID {
		t.Errorf("the deployer created deployments for %v; want two, in dave's project", created)
	}

	// Lists show what the caller may see.
	var list []struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal([]byte(w.must(w.do(dave, "GET", "/deployments", nil), 200).body), &list)
	if len(list) != 0 {
		t.Errorf("dave lists %v", list)
	}
	_ = json.Unmarshal([]byte(w.must(w.do(alice, "GET", "/deployments", nil), 200).body), &list)
	if len(list) != 1 || list[0].ID != "3" {
		t.Errorf("alice lists %v, want deployment 3", list)
	}
	w.must(w.do(dave, "GET", "/deployments?project_id="+theirs.ID, nil), 404)
}

// TestUserRecreatedGetsNothing: memberships, tokens and ownership belong
// to the account, not the name.
func TestUserRecreatedGetsNothing(t *testing.T) {
	w := newAuthWorld(t)
	carol, alice := w.user("carol"), w.user("alice")
	p := w.project(carol, "carolproj")
	w.must(w.do(carol, "PUT", "/projects/carolproj/members/alice", map[string]string{"role": "editor"}), 200)
	w.must(w.do(alice, "GET", "/projects/carolproj", nil), 200)

	w.must(w.do(w.admin, "DELETE", "/users/carol", nil), 200)
	w.must(w.do(w.admin, "DELETE", "/users/alice", nil), 200)
	w.must(w.do(carol, "GET", "/me", nil), 401)
	carol2, alice2 := w.user("carol"), w.user("alice")
	for who, tok := range map[string]string{"carol": carol2, "alice": alice2} {
		a := w.do(tok, "GET", "/projects/carolproj", nil)
		none := w.do(tok, "GET", "/projects/nosuch", nil)
		if a.status != 404 || a.body != strings.ReplaceAll(none.body, "nosuch", "carolproj") {
			t.Errorf("the new %s reads the old one's project: %d %s", who, a.status, a.body)
		}
		w.must(w.do(tok, "PUT", "/projects/"+p.ID+"/run", nil), 404)
		var list []projectInfo
		_ = json.Unmarshal([]byte(w.must(w.do(tok, "GET", "/projects", nil), 200).body), &list)
		if len(list) != 0 {
			t.Errorf("the new %s lists %v", who, list)
		}
	}
	var ms []struct{ User string }
	_ = json.Unmarshal([]byte(w.must(w.do(w.admin, "GET", "/projects/carolproj/members", nil), 200).body), &ms)
	if len(ms) != 0 {
		t.Errorf("members after both were deleted: %+v", ms)
	}
	// The old tokens stay dead for the newcomers too.
	w.must(w.do(carol, "GET", "/me", nil), 401)
	w.must(w.do(alice, "GET", "/projects", nil), 401)
}

// TestLegacyRecordsMigrated: users, tokens and memberships stored by name
// before ids existed are bound to ids on start; a project recorded with
// only its creator's name belongs to that account only if it is older
// than the project.
func TestLegacyRecordsMigrated(t *testing.T) {
	w := newAuthWorld(t)
	db := w.g.db
	ctx := context.Background()
	old := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	mustInsert := func(coll string, doc any) {
		if _, err := db.Collection(coll).InsertOne(ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
	type legacyUser struct {
		Name      string    `bson:"_id"`
		Admin     bool      `bson:"admin"`
		CreatedAt time.Time `bson:"createdAt"`
	}
	mustInsert("users", legacyUser{"erin", false, old})
	mustInsert("users", legacyUser{"frank", false, time.Now().UTC()}) // made after erin's project
	mustInsert("tokens", map[string]any{"_id": "t1", "user": "erin", "name": "x", "hash": "h-erin", "createdAt": old})
	mustInsert("tokens", map[string]any{"_id": "t2", "user": "gone", "name": "x", "hash": "h-gone", "createdAt": old})
	mustInsert("members", map[string]any{"project": "9", "user": "frank", "role": "viewer"})
	mustInsert("members", map[string]any{"project": "9", "user": "gone", "role": "owner"})

	// A restart of the gateway migrates.
	w.g.access = nil
	if err := w.g.prepare(ctx); err != nil {
		t.Fatal(err)
	}
	erin, err := w.g.access.User(ctx, "erin")
	if err != nil || erin.ID == "" {
		t.Fatalf("erin after the migration: %+v %v", erin, err)
	}
	tok, err := w.g.access.TokenByHash(ctx, "h-erin")
	if err != nil || tok.UserID != erin.ID {
		t.Fatalf("erin's token is bound to %q (%v), want %q", tok.UserID, err, erin.ID)
	}
	if _, err := w.g.access.TokenByHash(ctx, "h-gone"); err == nil {
		t.Error("the token of a user who no longer exists survived the migration")
	}
	frank, _ := w.g.access.User(ctx, "frank")
	if r, _ := w.g.access.Role(ctx, "9", frank.ID); r != "viewer" {
		t.Errorf("frank's migrated role on 9 is %q", r)
	}
	if n, _ := db.Collection("members").CountDocuments(ctx, map[string]any{"user": "gone"}); n != 0 {
		t.Error("the membership of a user who no longer exists survived the migration")
	}
	again, _ := w.g.access.User(ctx, "erin")
	if again.ID != erin.ID {
		t.Error("a second start changed erin's id")
	}

	// A project recorded by name: erin, older than it, owns it; frank,
	// whose account came later, would not own a project of that name.
	p := projectInfo{ID: "9", Name: "legacy", CreatedBy: "erin", CreatedAt: old.Add(time.Minute)}
	if !creatorOf(p).Is(erin.Name, erin.ID, erin.CreatedAt) {
		t.Error("erin does not own the project she created before ids")
	}
	p.CreatedBy = "frank"
	if creatorOf(p).Is(frank.Name, frank.ID, frank.CreatedAt) {
		t.Error("an account newer than the project owns it by name")
	}
}

// TestViewerOnEveryMLflowRoute sends every route of the pinned MLflow's
// table through the gateway with a viewer's token: reads pass the
// authorisation (and meet the stopped project's 409), writes are 403.
func TestViewerOnEveryMLflowRoute(t *testing.T) {
	w := newAuthWorld(t)
	carol, alice := w.user("carol"), w.user("alice")
	p := w.project(carol, "carolproj")
	w.must(w.do(carol, "PUT", "/projects/carolproj/members/alice", map[string]string{"role": "viewer"}), 200)
	base := "/projects/" + p.ID + "/mlflow"
	for _, r := range mlflowRoutes {
		path := instance(r.pattern)
		a := w.do(alice, r.method, base+path, nil)
		switch {
		case r.read && a.status != http.StatusConflict:
			t.Errorf("viewer %s %s (a read): %d %s, want it through to the project (409: not running)", r.method, path, a.status, a.body)
		case !r.read && a.status != http.StatusForbidden:
			t.Errorf("viewer %s %s (a write): %d %s, want 403", r.method, path, a.status, a.body)
		}
	}
	for _, c := range []struct{ method, path string }{
		{"PUT", "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/evil/runs/search"},
		{"DELETE", "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/evil/runs/search"},
		{"POST", "/api/2.0/mlflow/unknown/runs/search"},
	} {
		if a := w.do(alice, c.method, base+c.path, nil); a.status != http.StatusForbidden {
			t.Errorf("viewer %s %s: %d %s, want 403", c.method, c.path, a.status, a.body)
		}
	}
}

// TestBrowserSignIn: a token typed into /signin becomes an HttpOnly,
// SameSite session cookie accepted by the API and the MLflow proxy;
// writes with it must come from the gateway's own origin or carry the
// CSRF token; CORS preflights need no token.
func TestBrowserSignIn(t *testing.T) {
	w := newAuthWorld(t)
	carol := w.user("carol")
	p := w.project(carol, "carolproj")

	page := serve(w.e, "GET", "/signin?next=/projects/1/mlflow/", nil)
	if page.Code != 200 || !strings.Contains(page.Body.String(), `name="token"`) || !strings.Contains(page.Body.String(), `value="/projects/1/mlflow/"`) {
		t.Fatalf("sign-in form: %d %s", page.Code, page.Body)
	}
	form := func(token, next string, header ...string) *httptest.ResponseRecorder {
		body := url.Values{"token": {token}, "next": {next}}.Encode()
		return serve(w.e, "POST", "/signin", strings.NewReader(body),
			append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)...)
	}
	if r := form("mlp_wrong", "/"); r.Code != 401 || !strings.Contains(r.Body.String(), "invalid or revoked token") {
		t.Errorf("a wrong token: %d %s", r.Code, r.Body)
	}
	if r := form(carol, "/", "Origin", "http://evil.test"); r.Code != 403 {
		t.Errorf("signing in from another site's form: %d %s", r.Code, r.Body)
	}
	r := form(carol, "//evil.test/x")
	if r.Code != http.StatusSeeOther || r.Header().Get("Location") != "/" {
		t.Fatalf("sign-in: %d Location %q, want 303 to / (never another site)", r.Code, r.Header().Get("Location"))
	}
	var session, csrf *http.Cookie
	for _, ck := range r.Result().Cookies() {
		switch ck.Name {
		case sessionCookie:
			session = ck
		case csrfCookie:
			csrf = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure || session.Path != "/" || csrf == nil {
		t.Fatalf("session cookie %+v, csrf cookie %+v", session, csrf)
	}
	if r := form(carol, "/", "X-Forwarded-Proto", "https"); !strings.Contains(r.Header().Get("Set-Cookie"), "Secure") {
		t.Errorf("behind https the cookie is not Secure: %q", r.Header().Get("Set-Cookie"))
	}
	withCookie := func(method, path string, header ...string) *httptest.ResponseRecorder {
		return serve(w.e, method, path, strings.NewReader(`{"description":"x"}`),
			append([]string{"Cookie", session.Name + "=" + session.Value, "Content-Type", "application/json"}, header...)...)
	}
	if r := withCookie("GET", "/me"); r.Code != 200 || !strings.Contains(r.Body.String(), `"carol"`) {
		t.Fatalf("GET /me with the cookie: %d %s", r.Code, r.Body)
	}
	// The MLflow proxy takes it too (the project is not running: 409, past auth).
	if r := withCookie("GET", "/projects/carolproj/mlflow/api/2.0/mlflow/experiments/search"); r.Code != 409 {
		t.Errorf("the proxy with the cookie: %d %s", r.Code, r.Body)
	}
	// Writes: only from the gateway's own pages, or with the CSRF token.
	for name, hdr := range map[string][]string{
		"no origin":         nil,
		"another origin":    {"Origin", "http://evil.test"},
		"another referer":   {"Referer", "http://evil.test/page"},
		"a wrong csrf":      {csrfHeader, "nope"},
		"a look-alike host": {"Origin", "http://example.com.evil.test"},
	} {
		if r := withCookie("PUT", "/projects/"+p.ID, hdr...); r.Code != 403 || !strings.Contains(r.Body.String(), csrfHeader) {
			t.Errorf("a cookie write with %s: %d %s, want 403", name, r.Code, r.Body)
		}
		if r := withCookie("POST", "/projects/carolproj/mlflow/api/2.0/mlflow/experiments/create", hdr...); r.Code != 403 {
			t.Errorf("a cookie write through the proxy with %s: %d %s, want 403", name, r.Code, r.Body)
		}
	}
	// httptest requests are for host example.com.
	if r := withCookie("PUT", "/projects/"+p.ID, "Origin", "http://example.com"); r.Code == 403 || r.Code == 401 {
		t.Errorf("a same-origin cookie write: %d %s", r.Code, r.Body)
	}
	if r := withCookie("PUT", "/projects/"+p.ID, csrfHeader, csrf.Value); r.Code == 403 || r.Code == 401 {
		t.Errorf("a cookie write with the CSRF token: %d %s", r.Code, r.Body)
	}

	// A browser opening the MLflow UI without a sign-in is sent to the form.
	if r := serve(w.e, "GET", "/projects/carolproj/mlflow/", nil, "Accept", "text/html"); r.Code != http.StatusSeeOther ||
		r.Header().Get("Location") != "/signin?next=%2Fprojects%2Fcarolproj%2Fmlflow%2F" {
		t.Errorf("the MLflow UI without a sign-in: %d Location %q", r.Code, r.Header().Get("Location"))
	}
	// Preflights need no token; only the gateway's own origin is allowed.
	for origin, allowed := range map[string]bool{"http://example.com": true, "http://evil.test": false} {
		for _, path := range []string{"/projects", "/projects/carolproj/mlflow/api/2.0/mlflow/runs/search"} {
			r := serve(w.e, "OPTIONS", path, nil, "Origin", origin, "Access-Control-Request-Method", "POST")
			got := r.Header().Get("Access-Control-Allow-Origin")
			if r.Code != http.StatusNoContent || (got == origin) != allowed {
				t.Errorf("preflight %s from %s: %d Allow-Origin %q", path, origin, r.Code, got)
			}
		}
	}

	// Signing out is a cookie write like the others: another site's page
	// may not sign the browser out.
	for name, hdr := range map[string][]string{
		"no origin":       nil,
		"another origin":  {"Origin", "http://evil.test"},
		"another referer": {"Referer", "http://evil.test/page"},
		"a wrong csrf":    {csrfHeader, "nope"},
	} {
		r := serve(w.e, "POST", "/signout", nil, append([]string{"Cookie", session.Name + "=" + session.Value}, hdr...)...)
		if r.Code != 403 || !strings.Contains(r.Body.String(), csrfHeader) {
			t.Errorf("sign-out with %s: %d %s, want 403", name, r.Code, r.Body)
		}
		if r := withCookie("GET", "/me"); r.Code != 200 {
			t.Fatalf("a refused sign-out (%s) ended the sign-in: %d %s", name, r.Code, r.Body)
		}
	}
	// Signing out, or revoking the token, ends the sign-in.
	if r := serve(w.e, "POST", "/signout", nil, "Cookie", session.Name+"="+session.Value, csrfHeader, csrf.Value); r.Code != 200 {
		t.Fatalf("sign-out: %d %s", r.Code, r.Body)
	}
	if r := withCookie("GET", "/me"); r.Code != 401 {
		t.Errorf("after sign-out: %d %s", r.Code, r.Body)
	}
	r = form(carol, "/")
	session = r.Result().Cookies()[0]
	var toks []struct{ ID string }
	_ = json.Unmarshal([]byte(w.must(w.do(w.admin, "GET", "/users/carol/tokens", nil), 200).body), &toks)
	for _, tk := range toks {
		w.must(w.do(w.admin, "DELETE", "/users/carol/tokens/"+tk.ID, nil), 200)
	}
	if r := withCookie("GET", "/me"); r.Code != 401 {
		t.Errorf("after the token was revoked: %d %s", r.Code, r.Body)
	}
}
