package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// A gateway that has not yet seen a rollover's event still sends
// predicts to the old server; once that server is gone, a predict it
// refuses before any byte was sent goes to the server the deployer names
// now, and the answer says which version served it.
func TestPredictFollowsARolloverItMissed(t *testing.T) {
	nc := startNATS(t)
	answer := func(version string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if !strings.Contains(string(body), "inputs") {
				http.Error(w, "body lost", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"predictions": [`+version+`]}`)
		}))
	}
	oldSrv, newSrv := answer("1"), answer("2")
	defer newSrv.Close()
	oldURL := oldSrv.URL
	oldSrv.Close() // stopped after its drain

	if _, err := events.AddService(nc, "deployer", "0.0.0", "test", 5e9, map[string]events.Operation{
		"get": func(context.Context, events.Request) (any, error) {
			return map[string]any{"id": "7", "status": "running", "desired_state": "running", "url": newSrv.URL, "version": "2"}, nil
		},
	}); err != nil {
		t.Fatal(err)
	}
	p := &predictProxy{g: &Gateway{nc: nc, log: slog.New(slog.NewTextHandler(io.Discard, nil))}, max: 1 << 20,
		client: &http.Client{}, watched: true,
		cache: map[string]deployEndpoint{"7": {ID: "7", Status: "running", URL: oldURL, Version: "1"}}}
	gin.SetMode(gin.TestMode)
	e := gin.New()
	e.POST("/deployments/:id/predict", p.handle)

	w := serve(e, http.MethodPost, "/deployments/7/predict", strings.NewReader(`{"inputs": [[1.0]]}`), "Content-Type", "application/json")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "[2]") {
		t.Fatalf("predict answered %d %s, want the new server's answer", w.Code, w.Body)
	}
	if got := w.Header().Get(VersionHeader); got != "2" {
		t.Fatalf("%s: %q, want 2", VersionHeader, got)
	}
}
