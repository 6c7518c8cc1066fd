package gateway

import "testing"

// Every handler the events are keyed on is a write route of the pinned
// MLflow: an upgrade that renames one fails here, not silently.
func TestRegistryHandlersAreMLflowRoutes(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range mlflowRoutes {
		if _, ok := registryHandlers[r.handler]; ok {
			if r.read {
				t.Errorf("%s %s (%s) is a read, yet it makes events", r.method, r.pattern, r.handler)
			}
			seen[r.handler] = true
		}
	}
	for h := range registryHandlers {
		if !seen[h] {
			t.Errorf("MLflow %s has no route with handler %s: regenerate the table or update registryHandlers", mlflowVersion, h)
		}
	}
}

func TestMLflowEventHandler(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"POST", "/api/2.0/mlflow/registered-models/alias", "_set_registered_model_alias"},
		{"POST", "/ajax-api/2.0/mlflow/registered-models/alias", "_set_registered_model_alias"},
		{"DELETE", "/ajax-api/2.0/mlflow/registered-models/alias", "_delete_registered_model_alias"},
		{"GET", "/api/2.0/mlflow/registered-models/alias", ""},
		{"POST", "/api/2.0/mlflow/model-versions/create", "_create_model_version"},
		{"POST", "/api/2.0/mlflow/runs/update", "_update_run"},
		{"POST", "/api/2.0/mlflow/runs/log-metric", ""},
		{"POST", "/api/2.0/mlflow/../mlflow/runs/update", ""},
	} {
		if got := mlflowEventHandler(c.method, c.path); got != c.want {
			t.Errorf("%s %s: handler %q, want %q", c.method, c.path, got, c.want)
		}
	}
}
