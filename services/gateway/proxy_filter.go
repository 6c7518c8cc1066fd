package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/mlflowfilter"
)

// searchBodyLimit bounds the JSON body of an MLflow search read through
// the proxy to check its filter; real searches are a few kilobytes.
const searchBodyLimit = 1 << 20

// checkProxiedFilter refuses an MLflow search through the proxy whose
// filter exceeds mlflowfilter's bounds, the same as the REST API does:
// MLflow cannot be interrupted once it runs such a query. It reads (and
// puts back) the body of POST searches only.
func checkProxiedFilter(r *http.Request, suffix string) error {
	if !strings.HasSuffix(suffix, "/search") || !strings.Contains(suffix, "/mlflow/") {
		return nil
	}
	if err := mlflowfilter.Check("filter", r.URL.Query().Get("filter")); err != nil {
		return events.Errorf(http.StatusBadRequest, "%v", err)
	}
	if r.Method != http.MethodPost || r.Body == nil {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, searchBodyLimit+1))
	if err != nil {
		return events.Errorf(http.StatusBadRequest, "reading the search request: %v", err)
	}
	if len(body) > searchBodyLimit {
		return events.Errorf(http.StatusBadRequest, "the search request body is over %d bytes: narrow the search", searchBodyLimit)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var search struct {
		Filter string `json:"filter"`
	}
	if json.Unmarshal(body, &search) == nil {
		if err := mlflowfilter.Check("filter", search.Filter); err != nil {
			return events.Errorf(http.StatusBadRequest, "%v", err)
		}
	}
	return nil // MLflow answers a malformed body itself
}
