package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"
)

// originalIDKeys are the id keys the original mlpanel answered its create,
// run, stop and delete calls with ({"deployment_id": "7"}); its clients
// read them, so those answers carry them beside the entity's own id.
var originalIDKeys = map[string]string{
	"POST /deployments":               "deployment_id",
	"PUT /deployments/:id/run":        "deployment_id",
	"PUT /deployments/:id/stop":       "deployment_id",
	"DELETE /deployments/:id":         "deployment_id",
	"POST /experiments":               "experiment_id",
	"DELETE /experiments/:id":         "experiment_id",
	"DELETE /runs/:id":                "run_id",
	"POST /registered-models":         "model_id",
	"DELETE /registered-models/:name": "model_id",
}

// withOriginalID adds the original's id key to an entity answer.
func withOriginalID(rt route, reply json.RawMessage) json.RawMessage {
	key := originalIDKeys[rt.method+" "+rt.path]
	if key == "" {
		return reply
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(reply, &m) != nil {
		return reply
	}
	id, ok := m["id"]
	if _, has := m[key]; !ok || has {
		return reply
	}
	m[key] = id
	b, err := json.Marshal(m)
	if err != nil {
		return reply
	}
	return b
}

// healthcheck is the original's service-level GET /healthcheck: "OK"
// while the gateway serves. /healthz and /readyz say more.
func healthcheck(c *gin.Context) { c.JSON(http.StatusOK, "OK") }
