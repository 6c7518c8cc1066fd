package app

import (
	"errors"
	"net/http"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// The app returns kinds and the edge (events.StatusOf) picks statuses:
// every error the tracking app makes must still answer with the status
// and message clients saw when the app picked statuses itself. A changed
// kind, a changed entry of the edge's table or a lost relayed status
// fails here.
func TestErrorsAnswerAsBefore(t *testing.T) {
	tg := target{p: Project{ID: "7", Name: "p"}}
	api := func(status int, code, msg string) error {
		return tg.mlflowErr(&mc.APIError{HTTPStatus: status, Code: code, Message: msg, Endpoint: "runs/get"})
	}
	cases := []struct {
		name   string
		err    error
		status int
		msg    string
	}{
		// MLflow's codes the panel knows: its message alone.
		{"not found", api(404, mc.CodeNotFound, "Run x not found"), http.StatusNotFound, "Run x not found"},
		{"invalid parameter", api(400, mc.CodeInvalidParameter, "bad id"), http.StatusBadRequest, "bad id"},
		{"bad request", api(400, mc.CodeBadRequest, "bad"), http.StatusBadRequest, "bad"},
		{"already exists", api(400, mc.CodeAlreadyExists, "exists"), http.StatusConflict, "exists"},
		{"invalid state", api(500, mc.CodeInvalidState, "deleted"), http.StatusConflict, "deleted"},
		// Other answers of MLflow keep MLflow's status.
		{"403", api(403, "PERMISSION_DENIED", "no"), http.StatusForbidden, "MLflow runs/get: PERMISSION_DENIED: no"},
		{"401", api(401, "UNAUTHENTICATED", "who"), http.StatusUnauthorized, "MLflow runs/get: UNAUTHENTICATED: who"},
		{"429", api(429, "REQUEST_LIMIT_EXCEEDED", "slow"), http.StatusTooManyRequests, "MLflow runs/get: REQUEST_LIMIT_EXCEEDED: slow"},
		{"400 not in shape", api(400, "", "<html>"), http.StatusBadRequest, "MLflow runs/get answered HTTP 400: <html>"},
		{"405 not in shape", api(405, "", "<html>"), http.StatusMethodNotAllowed, "MLflow runs/get answered HTTP 405: <html>"},
		{"500", api(500, "INTERNAL_ERROR", "locked"), http.StatusInternalServerError,
			"the tracking server of project p could not handle this request: INTERNAL_ERROR: locked (check the input; the server's log: GET /projects/7/logs)"},
		{"503", api(503, "TEMPORARILY_UNAVAILABLE", "busy"), http.StatusServiceUnavailable,
			"the tracking server of project p could not handle this request: TEMPORARILY_UNAVAILABLE: busy (check the input; the server's log: GET /projects/7/logs)"},
		{"501", api(501, "NOT_IMPLEMENTED", "no"), http.StatusNotImplemented,
			"the tracking server of project p could not handle this request: NOT_IMPLEMENTED: no (check the input; the server's log: GET /projects/7/logs)"},
		// No answer of MLflow's: 502, or 504 for none in time.
		{"404 not in shape", api(404, "", "nope"), http.StatusBadGateway,
			"the tracking server of project p does not serve runs/get (HTTP 404): is it an MLflow 3 server?"},
		{"500 not in shape", api(500, "", "<html>"), http.StatusBadGateway,
			"the tracking server of project p failed: MLflow runs/get answered HTTP 500: <html>"},
		{"timeout", tg.mlflowErr(&mc.UnreachableError{URL: "http://h", Timeout: true, Err: errors.New("deadline")}), http.StatusGatewayTimeout,
			"the tracking server of project p at http://h did not answer in time: try again, or check GET /projects/7/logs"},
		{"unreachable", tg.mlflowErr(&mc.UnreachableError{URL: "http://h", Err: errors.New("refused")}), http.StatusBadGateway,
			"the tracking server of project p at http://h cannot be reached (refused): check GET /projects/7/ping and /logs"},
		{"other", tg.mlflowErr(errors.New("boom")), http.StatusInternalServerError, "project 7: boom"},
		// The app's own conditions.
		{"archived", notRunning(Project{ID: "3", Name: "a", Status: "archived"}), http.StatusConflict,
			"project a is archived: restore it with PUT /projects/3/restore, then start it with PUT /projects/3/run"},
		{"stopped", notRunning(Project{ID: "1", Name: "s", Status: "terminated"}), http.StatusConflict,
			"project s is terminated, not running: start it with PUT /projects/1/run"},
		{"database", (&Search{}).dbErr(Project{Name: "p"}, errors.New("locked")), http.StatusServiceUnavailable,
			"searching the database of project p: locked"},
		{"filter", checkFilter(heavyFilter), http.StatusBadRequest, checkFilter(heavyFilter).Error()},
	}
	for _, c := range cases {
		if got := events.StatusOf(c.err); got != c.status || c.err.Error() != c.msg {
			t.Errorf("%s: %d %q, want %d %q", c.name, got, c.err, c.status, c.msg)
		}
	}
	// App code decides on kinds: a 400 of MLflow's not in its shape is
	// still the caller's input (the cross-project search says so), a 404
	// in MLflow's shape still a missing thing.
	if err := api(400, "", "<html>"); !errs.Is(err, errs.Invalid) {
		t.Errorf("relayed 400 is %v, want invalid", errs.KindOf(err))
	}
	if err := api(404, "ENDPOINT_NOT_FOUND", "x"); !errs.Is(err, errs.NotFound) || events.StatusOf(err) != http.StatusNotFound {
		t.Errorf("404 in MLflow's shape: %v %d", errs.KindOf(err), events.StatusOf(err))
	}
}
