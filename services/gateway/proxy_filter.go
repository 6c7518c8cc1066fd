package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/mlflowfilter"
	tracking "github.com/mlpanel/mlpanel/services/tracking/client"
)

// searchBodyLimit bounds the JSON body of an MLflow search read through
// the proxy to check its filter; real searches are a few kilobytes.
const searchBodyLimit = 1 << 20

// checkProxiedFilter refuses an MLflow search through the proxy whose
// filter exceeds mlflowfilter's bounds, the same as the REST API does:
// MLflow cannot be interrupted once it runs such a query. It reads (and
// puts back) the body of POST searches only, and returns the filter it
// found ("" for any other call).
func checkProxiedFilter(r *http.Request, suffix string) (string, error) {
	if !strings.HasSuffix(suffix, "/search") || !strings.Contains(suffix, "/mlflow/") {
		return "", nil
	}
	filter := r.URL.Query().Get("filter")
	if err := mlflowfilter.Check("filter", filter); err != nil {
		return "", events.Errorf(http.StatusBadRequest, "%v", err)
	}
	if r.Method != http.MethodPost || r.Body == nil {
		return filter, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, searchBodyLimit+1))
	if err != nil {
		return "", events.Errorf(http.StatusBadRequest, "reading the search request: %v", err)
	}
	if len(body) > searchBodyLimit {
		return "", events.Errorf(http.StatusBadRequest, "the search request body is over %d bytes: narrow the search", searchBodyLimit)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var search struct {
		Filter string `json:"filter"`
	}
	if json.Unmarshal(body, &search) == nil {
		if err := mlflowfilter.Check("filter", search.Filter); err != nil {
			return "", events.Errorf(http.StatusBadRequest, "%v", err)
		}
		if search.Filter != "" {
			filter = search.Filter
		}
	}
	return filter, nil // MLflow answers a malformed body itself
}

// isRunSearch reports whether the proxied path is MLflow's runs/search
// (REST or the UI's ajax API), whose filter is a run filter.
func isRunSearch(suffix string) bool {
	return strings.HasSuffix(suffix, "/mlflow/runs/search")
}

// checkRunGrammar asks the tracking service whether MLflow's grammar
// refuses a run filter, so a search of a project that is not running is
// refused without waking it. Only a refusal counts: when the tracking
// service cannot tell (or does not answer within a wake's fraction),
// MLflow's server judges.
func (g *Gateway) checkRunGrammar(ctx context.Context, filter string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := tracking.New(g.nc).CheckRunFilter(ctx, filter)
	if events.StatusOf(err) == http.StatusBadRequest {
		return err
	}
	return nil
}
