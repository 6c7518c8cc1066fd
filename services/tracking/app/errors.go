package app

import (
	"errors"
	"fmt"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/mlflowfilter"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// mlflowErr says what a tracking server answered (or did not) in the
// panel's error kinds (pkg/platform/errs); pkg/events maps them to the
// statuses callers see. MLflow's own message is kept, since it says
// precisely what was wrong with the input. The rule (README, "Errors"):
// an answer of MLflow keeps MLflow's status, 4xx or 5xx, since MLflow was
// reached and spoke about the request; 502 (Upstream) and 504 (Timeout)
// are kept for no answer (unreachable, timed out) or one that is not
// MLflow's (not its JSON).
//
// What an answer means is the MLflow client's to say (mc.APIError.Kind:
// the client speaks HTTP, this package does not). Where MLflow's status is
// passed on as it is and no kind has it (a 401, 429 or 500 of MLflow's
// own), the error relays it as data (errs.Relay) rather than this package
// picking a status: the status is a fact about MLflow's answer, and the
// edge is still the one place that turns errors into statuses.
func (t target) mlflowErr(err error) error {
	if err == nil {
		return nil
	}
	var ae *mc.APIError
	var ue *mc.UnreachableError
	switch {
	case errors.As(err, &ae):
		switch {
		case ae.KnownCode():
			return errs.New(ae.Kind(), "%s", ae.Message)
		case ae.Unknown():
			// No JSON error: the server does not know the endpoint, so it
			// is not an MLflow server of a version mlpanel speaks to.
			return errs.Upstreamf("the tracking server of project %s does not serve %s (HTTP 404): is it an MLflow 3 server?", t.p.Name, ae.Endpoint)
		case ae.ClientError():
			return errs.Relay(ae.Kind(), ae.HTTPStatus, "%s", ae.Error())
		case ae.ServerError() && ae.InShape():
			// MLflow itself answered, in its own error shape, about this
			// very request: the gateway worked, so this is no 502. MLflow
			// answers 500 to some bad input it does not check (the ones
			// known are checked before the call, with a 400); its status
			// and message go to the caller as they are.
			return errs.Relay(ae.Kind(), ae.HTTPStatus, "the tracking server of project %s could not handle this request: %s: %s (check the input; the server's log: GET /projects/%s/logs)", t.p.Name, ae.Code, ae.Message, t.p.ID)
		}
		// No answer in MLflow's shape (an HTML error page of a proxy or
		// of gunicorn): something between MLflow and the caller failed.
		return errs.Upstreamf("the tracking server of project %s failed: %s", t.p.Name, ae.Error())
	case errors.As(err, &ue):
		if ue.Timeout {
			return errs.Timeoutf("the tracking server of project %s at %s did not answer in time: try again, or check GET /projects/%s/logs", t.p.Name, ue.URL, t.p.ID)
		}
		return errs.Upstreamf("the tracking server of project %s at %s cannot be reached (%v): check GET /projects/%s/ping and /logs", t.p.Name, ue.URL, ue.Err, t.p.ID)
	}
	return fmt.Errorf("project %s: %w", t.p.ID, err)
}

// checkFilter refuses a search filter MLflow would take minutes over.
func checkFilter(filter string) error {
	if err := mlflowfilter.Check("filter", filter); err != nil {
		return errs.AsInvalid(err)
	}
	return nil
}
