package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestOps: what an operator and a new user reach first: readiness against
// the real NATS and FerretDB, metrics, the API document and Swagger UI.
func TestOps(t *testing.T) {
	r := call(t, http.MethodGet, "/readyz", nil)
	expect(t, r, http.StatusOK)
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	r.JSON(t, &ready)
	if ready.Status != "ready" || ready.Checks["nats"] != "ok" || ready.Checks["mongodb"] != "ok" {
		t.Fatalf("/readyz = %s", r.Body)
	}
	if r.Header.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID on the answer")
	}

	expect(t, call(t, http.MethodGet, "/projects", nil), http.StatusOK) // something to count
	m := call(t, http.MethodGet, "/metrics", nil)
	expect(t, m, http.StatusOK)
	if !strings.Contains(string(m.Body), `mlpanel_http_requests_total{method="GET",route="/projects",status="200"}`) {
		t.Errorf("/metrics does not count GET /projects:\n%.2000s", m.Body)
	}

	doc := call(t, http.MethodGet, "/openapi.json", nil)
	expect(t, doc, http.StatusOK)
	var spec struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(doc.Body, &spec); err != nil || !strings.HasPrefix(spec.OpenAPI, "3.") {
		t.Fatalf("/openapi.json is not an OpenAPI 3 document: %v", err)
	}
	for _, p := range []string{"/projects", "/experiments", "/runs", "/artifacts", "/registered-models", "/model-versions", "/deployments", "/users", "/audit"} {
		if _, ok := spec.Paths[p]; !ok {
			t.Errorf("the document lacks %s", p)
		}
	}
	ui := call(t, http.MethodGet, "/docs", nil)
	expect(t, ui, http.StatusOK)
	if !strings.Contains(string(ui.Body), "swagger-ui") {
		t.Fatalf("/docs is not Swagger UI: %.300s", ui.Body)
	}
}
