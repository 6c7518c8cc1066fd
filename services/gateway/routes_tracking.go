package gateway

import "net/http"

// The tracking service's endpoints: experiments, runs, metric history,
// artifact listings and the model registry of every running project.
// Artifact bytes are streamed by proxy_tracking.go, not over NATS.
func init() { extraRoutes = append(extraRoutes, trackingRoutes()...) }

func trackingRoutes() []route {
	const s = "mlpanel.tracking."
	return []route{
		{http.MethodGet, "/experiments", s + "experiments.list", http.StatusOK, true},
		{http.MethodPost, "/experiments", s + "experiments.create", http.StatusCreated, false},
		{http.MethodGet, "/experiments/:id", s + "experiments.get", http.StatusOK, false},
		{http.MethodDelete, "/experiments/:id", s + "experiments.delete", http.StatusOK, false},
		{http.MethodPut, "/experiments/:id/restore", s + "experiments.restore", http.StatusOK, false},

		{http.MethodGet, "/runs", s + "runs.list", http.StatusOK, true},
		{http.MethodGet, "/runs/:id", s + "runs.get", http.StatusOK, false},
		{http.MethodDelete, "/runs/:id", s + "runs.delete", http.StatusOK, false},
		{http.MethodPut, "/runs/:id/restore", s + "runs.restore", http.StatusOK, false},
		// *key: metric keys may hold slashes (train/loss).
		{http.MethodGet, "/runs/:id/metrics/*key", s + "runs.metric-history", http.StatusOK, true},

		{http.MethodGet, "/artifacts", s + "artifacts.list", http.StatusOK, true},

		{http.MethodGet, "/registered-models", s + "registered-models.list", http.StatusOK, true},
		{http.MethodPost, "/registered-models", s + "registered-models.create", http.StatusCreated, false},
		{http.MethodGet, "/registered-models/:name", s + "registered-models.get", http.StatusOK, false},
		{http.MethodDelete, "/registered-models/:name", s + "registered-models.delete", http.StatusOK, false},

		{http.MethodGet, "/model-versions", s + "model-versions.list", http.StatusOK, true},
		{http.MethodGet, "/model-versions/:version", s + "model-versions.get", http.StatusOK, false},
		{http.MethodDelete, "/model-versions/:version", s + "model-versions.delete", http.StatusOK, false},
		{http.MethodPut, "/model-versions/:version/aliases/:alias", s + "model-versions.set-alias", http.StatusOK, false},
		{http.MethodDelete, "/model-versions/:version/aliases/:alias", s + "model-versions.remove-alias", http.StatusOK, false},
	}
}
