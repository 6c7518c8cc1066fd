package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// An MLflow search through the proxy with a filter over the bounds is a
// 400 stating them, whether the filter is in the query or the JSON body;
// a body that passes reaches MLflow unchanged.
func TestProxiedSearchFilterIsBounded(t *testing.T) {
	heavy := strings.TrimSuffix(strings.Repeat("metrics.m > 0 AND ", 1000), " AND ")
	get := httptest.NewRequest(http.MethodGet, "/x?filter="+strings.ReplaceAll(heavy, " ", "%20"), nil)
	if _, err := checkProxiedFilter(get, "/ajax-api/2.0/mlflow/experiments/search"); events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "at most 50 clauses") {
		t.Fatalf("GET search with 1000 clauses: %v", err)
	}
	post := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(`{"experiment_ids":["1"],"filter":"`+heavy+`"}`))
	if _, err := checkProxiedFilter(post, "/api/2.0/mlflow/runs/search"); events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "1000 clauses") {
		t.Fatalf("POST runs/search with 1000 clauses: %v", err)
	}
	body := `{"experiment_ids":["1"],"filter":"metrics.m > 0"}`
	ok := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
	if filter, err := checkProxiedFilter(ok, "/api/2.0/mlflow/runs/search"); err != nil || filter != "metrics.m > 0" {
		t.Fatalf("a small filter: %q, %v; want it found and passed", filter, err)
	}
	if b, _ := io.ReadAll(ok.Body); string(b) != body {
		t.Fatalf("the body MLflow gets is %q, want %q", b, body)
	}
}
