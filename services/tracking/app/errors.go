package app

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/mlflowfilter"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// mlflowErr maps what a tracking server answered (or did not) to the
// status the caller sees. MLflow's own message is kept, since it says
// precisely what was wrong with the input. The rule (README, "Errors"):
// an answer of MLflow keeps MLflow's status, 4xx or 5xx, since MLflow was
// reached and spoke about the request; 502 and 504 are kept for no answer
// (unreachable, timed out) or one that is not MLflow's (not its JSON).
func (t target) mlflowErr(err error) error {
	if err == nil {
		return nil
	}
	var ae *mc.APIError
	var ue *mc.UnreachableError
	switch {
	case errors.As(err, &ae):
		switch ae.Code {
		case mc.CodeNotFound:
			return events.Errorf(http.StatusNotFound, "%s", ae.Message)
		case mc.CodeInvalidParameter, mc.CodeBadRequest:
			return events.Errorf(http.StatusBadRequest, "%s", ae.Message)
		case mc.CodeAlreadyExists, mc.CodeInvalidState:
			return events.Errorf(http.StatusConflict, "%s", ae.Message)
		}
		switch {
		case ae.HTTPStatus == http.StatusNotFound && ae.Code == "":
			// No JSON error: the server does not know the endpoint, so it
			// is not an MLflow server of a version mlpanel speaks to.
			return events.Errorf(http.StatusBadGateway, "the tracking server of project %s does not serve %s (HTTP 404): is it an MLflow 3 server?", t.p.Name, ae.Endpoint)
		case ae.HTTPStatus >= 400 && ae.HTTPStatus < 500:
			return events.Errorf(ae.HTTPStatus, "%s", ae.Error())
		case ae.HTTPStatus >= 500 && ae.Code != "":
			// MLflow itself answered, in its own error shape, about this
			// very request: the gateway worked, so this is no 502. MLflow
			// answers 500 to some bad input it does not check (the ones
			// known are checked before the call, with a 400); its status
			// and message go to the caller as they are.
			return events.Errorf(ae.HTTPStatus, "the tracking server of project %s could not handle this request: %s: %s (check the input; the server's log: GET /projects/%s/logs)", t.p.Name, ae.Code, ae.Message, t.p.ID)
		}
		// No answer in MLflow's shape (an HTML error page of a proxy or
		// of gunicorn): something between MLflow and the caller failed.
		return events.Errorf(http.StatusBadGateway, "the tracking server of project %s failed: %s", t.p.Name, ae.Error())
	case errors.As(err, &ue):
		if ue.Timeout {
			return events.Errorf(http.StatusGatewayTimeout,
				"the tracking server of project %s at %s did not answer in time: try again, or check GET /projects/%s/logs", t.p.Name, ue.URL, t.p.ID)
		}
		return events.Errorf(http.StatusBadGateway,
			"the tracking server of project %s at %s cannot be reached (%v): check GET /projects/%s/ping and /logs", t.p.Name, ue.URL, ue.Err, t.p.ID)
	}
	return fmt.Errorf("project %s: %w", t.p.ID, err)
}

// checkFilter refuses a search filter MLflow would take minutes over.
func checkFilter(filter string) error {
	if err := mlflowfilter.Check("filter", filter); err != nil {
		return events.Errorf(http.StatusBadRequest, "%v", err)
	}
	return nil
}

func badRequest(format string, args ...any) error {
	return events.Errorf(http.StatusBadRequest, format, args...)
}

func notFound(format string, args ...any) error {
	return events.Errorf(http.StatusNotFound, format, args...)
}

func conflict(format string, args ...any) error {
	return events.Errorf(http.StatusConflict, format, args...)
}
