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
// precisely what was wrong with the input.
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
		}
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
