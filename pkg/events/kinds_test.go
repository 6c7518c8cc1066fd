package events

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
)

// The app layers return kinds; the reply carries the status the gateway
// answers with, the same ones the apps used to pick themselves.
func TestKindsMapToStatusesAtTheEdge(t *testing.T) {
	for kind, want := range map[errs.Kind]int{
		errs.Invalid: 400, errs.NotFound: 404, errs.Conflict: 409, errs.Forbidden: 403,
		errs.Unavailable: 503, errs.Upstream: 502, errs.Timeout: 504, errs.Internal: 500,
	} {
		err := fmt.Errorf("context: %w", errs.New(kind, "what to do"))
		if got := StatusOf(err); got != want {
			t.Errorf("%v: status %d, want %d", kind, got, want)
		}
	}
	// An upstream answer passed on keeps the upstream's status, whatever
	// its kind; a status outside 4xx/5xx is no answer to relay.
	if got := StatusOf(fmt.Errorf("ctx: %w", errs.Relay(errs.Upstream, 429, "slow down"))); got != 429 {
		t.Errorf("relayed 429: %d", got)
	}
	if got := StatusOf(errs.Relay(errs.Upstream, 200, "odd")); got != 502 {
		t.Errorf("relayed 200: %d, want the kind's 502", got)
	}
	// A transport's own *Error (and a relayed reply) keeps its status.
	if got := StatusOf(Errorf(http.StatusGatewayTimeout, "late")); got != 504 {
		t.Errorf("*Error 504: %d", got)
	}
}

func TestAsDomainKeepsTheMessage(t *testing.T) {
	err := AsDomain(Errorf(http.StatusNotFound, `project "x" not found: list projects with GET /projects`))
	if !errs.Is(err, errs.NotFound) || err.Error() != `project "x" not found: list projects with GET /projects` || StatusOf(err) != 404 {
		t.Fatalf("AsDomain(404) = %#v", err)
	}
	if late := AsDomain(Errorf(http.StatusGatewayTimeout, "late")); !errs.Is(late, errs.Timeout) || StatusOf(late) != 504 {
		t.Fatalf("AsDomain(504) = %#v", late)
	}
	if big := Errorf(http.StatusRequestEntityTooLarge, "big"); AsDomain(big) != error(big) {
		t.Fatal("a status without a kind must come back as it is")
	}
	if AsDomain(nil) != nil {
		t.Fatal("AsDomain(nil) != nil")
	}
}
