package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

type fakeProjects map[string]Project

func (f fakeProjects) Get(_ context.Context, ref string) (Project, error) {
	for _, p := range f {
		if p.ID == ref || p.Name == ref {
			return p, nil
		}
	}
	return Project{}, errs.NotFoundf("project %q not found", ref)
}

// Wake of a fake project fails as a server that cannot start does.
func (f fakeProjects) Wake(ctx context.Context, ref string) (Project, error) {
	p, err := f.Get(ctx, ref)
	if err != nil {
		return p, err
	}
	return Project{}, errs.Unavailablef("project %s did not start: woken by the tracking service", p.Name)
}

func (f fakeProjects) Used(string) {}

func newService(projects fakeProjects, timeout time.Duration) *Service {
	hc := &http.Client{Timeout: timeout}
	return New(projects, func(u string) *mc.Client { return mc.New(u, hc) },
		slog.New(slog.NewTextHandler(io.Discard, nil)), func() int64 { return 42 })
}

func expectStatus(t *testing.T, err error, status int, want string) {
	t.Helper()
	if events.StatusOf(err) != status || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v (status %d), want %d saying %q", err, events.StatusOf(err), status, want)
	}
}

func TestProjectResolution(t *testing.T) {
	svc := newService(fakeProjects{
		"1": {ID: "1", Name: "stopped", Status: "terminated", InternalURL: "http://127.0.0.1:1"},
		"2": {ID: "2", Name: "starting", Status: "starting", InternalURL: "http://127.0.0.1:1"},
		"3": {ID: "3", Name: "archived", Status: "archived"},
		"4": {ID: "4", Name: "sleeping", Status: "sleeping"},
	}, time.Second)
	ctx := context.Background()
	_, err := svc.GetRun(ctx, "", "r")
	expectStatus(t, err, http.StatusBadRequest, "project_id is required")
	_, err = svc.GetRun(ctx, "ghost", "r")
	expectStatus(t, err, http.StatusNotFound, "not found")
	_, err = svc.GetRun(ctx, "stopped", "r")
	expectStatus(t, err, http.StatusConflict, "start it with PUT /projects/1/run")
	// A starting or sleeping project is waited for, not refused.
	_, err = svc.ListExperiments(ctx, ExperimentQuery{Project: "2"}, events.ListParams{})
	expectStatus(t, err, http.StatusServiceUnavailable, "woken by the tracking service")
	_, err = svc.GetRun(ctx, "sleeping", "r")
	expectStatus(t, err, http.StatusServiceUnavailable, "woken by the tracking service")
	_, err = svc.GetRun(ctx, "archived", "r")
	expectStatus(t, err, http.StatusConflict, "restore it with PUT /projects/3/restore, then start it with PUT /projects/3/run")
}

func TestTrackingServerFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer slow.Close()
	defer close(block)

	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error_code": "INTERNAL_ERROR", "message": "database is locked"}`)
	}))
	defer broken.Close()

	svc := newService(fakeProjects{
		"1": {ID: "1", Name: "gone", Status: "running", InternalURL: closed},
		"2": {ID: "2", Name: "slow", Status: "running", InternalURL: slow.URL},
		"3": {ID: "3", Name: "broken", Status: "running", InternalURL: broken.URL},
	}, 100*time.Millisecond)
	ctx := context.Background()
	_, err = svc.GetExperiment(ctx, "gone", "1")
	expectStatus(t, err, http.StatusBadGateway, "cannot be reached")
	_, err = svc.GetExperiment(ctx, "slow", "1")
	expectStatus(t, err, http.StatusGatewayTimeout, "did not answer in time")
	// MLflow answered, in its own shape: its status and message pass
	// through; a 502 says no MLflow answer came.
	_, err = svc.GetExperiment(ctx, "broken", "1")
	expectStatus(t, err, http.StatusInternalServerError, "could not handle this request: INTERNAL_ERROR: database is locked")
}

func TestMLflowErrorCodes(t *testing.T) {
	answers := map[string]struct {
		status int
		body   string
	}{
		"/api/2.0/mlflow/runs/get":                 {404, `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run with id=x not found"}`},
		"/api/2.0/mlflow/experiments/get":          {400, `{"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid experiment ID 'abc'"}`},
		"/api/2.0/mlflow/experiments/create":       {400, `{"error_code": "RESOURCE_ALREADY_EXISTS", "message": "Experiment 'e' already exists."}`},
		"/api/2.0/mlflow/registered-models/get":    {403, `{"error_code": "PERMISSION_DENIED", "message": "no"}`},
		"/api/2.0/mlflow/registered-models/search": {404, `not json`},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := answers[r.URL.Path]
		if !ok {
			t.Errorf("unexpected %s", r.URL.Path)
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	defer srv.Close()
	svc := newService(fakeProjects{"1": {ID: "1", Name: "p", Status: "running", InternalURL: srv.URL}}, time.Second)
	ctx := context.Background()

	_, err := svc.GetRun(ctx, "p", "x")
	expectStatus(t, err, http.StatusNotFound, "Run with id=x not found")
	_, err = svc.GetExperiment(ctx, "p", "12")
	expectStatus(t, err, http.StatusBadRequest, "Invalid experiment ID 'abc'")
	_, err = svc.CreateExperiment(ctx, "p", ExperimentInput{Name: "e"}, "")
	expectStatus(t, err, http.StatusConflict, "already exists")
	_, err = svc.GetRegisteredModel(ctx, "p", "m")
	expectStatus(t, err, http.StatusForbidden, "no")
	_, err = svc.ListRegisteredModels(ctx, "p", "", events.ListParams{})
	expectStatus(t, err, http.StatusBadGateway, "is it an MLflow 3 server")
}

// Input checks answer before any MLflow call.
func TestBadInput(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("MLflow called: %s", r.URL)
	}))
	defer srv.Close()
	svc := newService(fakeProjects{"1": {ID: "1", Name: "p", Status: "running", InternalURL: srv.URL}}, time.Second)
	ctx := context.Background()
	cases := []struct {
		err  error
		want string
	}{
		{second(svc.CreateExperiment(ctx, "p", ExperimentInput{Name: "  "}, "")), "name is required"},
		{second(svc.CreateExperiment(ctx, "p", ExperimentInput{Name: "e", Tags: map[string]string{"mlpanel.created_at": "1"}}, "")), "mlpanel's own"},
		{second(svc.ListExperiments(ctx, ExperimentQuery{Project: "p", View: "sideways"}, events.ListParams{})), "view="},
		{second(svc.ListRuns(ctx, RunQuery{Project: "p"}, events.ListParams{Sort: "colour"})), "cannot sort runs"},
		{second(svc.ListArtifacts(ctx, "p", "r", "../x", events.ListParams{})), "unsafe artifact path"},
		{second(svc.ListArtifacts(ctx, "p", "", "", events.ListParams{})), "run_id is required"},
		{second(svc.LocateArtifact(ctx, "p", "r", "")), "path is required"},
		{second(svc.LocateArtifact(ctx, "p", "r", "%2e%2e/x")), "unsafe artifact path"},
		{second(svc.ListArtifacts(ctx, "p", "r", strings.Repeat("a/", 600), events.ListParams{})), "too long: at most 1024 bytes"},
		{second(svc.LocateArtifact(ctx, "p", "r", strings.Repeat("a", 10000))), "too long: at most 1024 bytes"},
		{second(svc.LocateArtifact(ctx, "p", "r", "d/"+strings.Repeat("b", 256))), "at most 255 bytes between slashes"},
		{second(svc.CreateRegisteredModel(ctx, "p", ModelInput{Name: "m", Source: "models:/"})), "want models:/m-<logged model id>"},
		{second(svc.MetricHistory(ctx, "p", "r", "/", events.ListParams{})), "metric key is required"},
		{second(svc.CreateRegisteredModel(ctx, "p", ModelInput{})), "name is required"},
		{second(svc.CreateRegisteredModel(ctx, "p", ModelInput{Name: "m", ArtifactPath: "model"})), "needs run_id"},
		{second(svc.GetModelVersion(ctx, "p", "", "1")), "model_id is required"},
		{second(svc.GetExperiment(ctx, "p", "abc")), `experiment id "abc" must be a valid integer`},
		{second(svc.GetExperiment(ctx, "p", "99999999999999999999")), "must be a valid integer"},
		{second(svc.ListRuns(ctx, RunQuery{Project: "p", ExperimentID: "1,x"}, events.ListParams{})), `experiment_id "x" must be a valid integer`},
		{second(svc.GetModelVersion(ctx, "p", "m", "01")), "version number"},
		{second(svc.SetAlias(ctx, "p", "m", "1", " ")), "alias is required"},
		// A filter MLflow would evaluate for minutes is refused with the limits.
		{second(svc.ListRuns(ctx, RunQuery{Project: "p", Filter: heavyFilter}, events.ListParams{})), "1000 clauses"},
		{second(svc.ListExperiments(ctx, ExperimentQuery{Project: "p", Filter: heavyFilter}, events.ListParams{})), "at most 50 clauses"},
		{second(svc.ListRegisteredModels(ctx, "p", "name LIKE '"+strings.Repeat("x", 5000)+"'", events.ListParams{})), "in 4096 bytes"},
	}
	for _, c := range cases {
		expectStatus(t, c.err, http.StatusBadRequest, c.want)
	}
}

var heavyFilter = strings.TrimSuffix(strings.Repeat("metrics.m > 0 AND ", 1000), " AND ")

func second[T any](_ T, err error) error { return err }

func TestSplitClauses(t *testing.T) {
	got := splitClauses("metrics.acc DESC, params.`a,b` ASC ,, start_time")
	want := []string{"metrics.acc DESC", "params.`a,b` ASC", "start_time"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%q", got)
	}
}
