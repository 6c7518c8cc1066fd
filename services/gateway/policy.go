package gateway

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// need is what a route asks of the caller when auth is on.
type need int

const (
	public      need = iota // no token: health, metrics, the API document
	signedIn                // any user; lists are narrowed to what they may see
	projRead                // viewer on the project
	projWrite               // editor on the project
	projOwn                 // owner of the project
	selfOrAdmin             // the user named in the path, or an admin
	adminOnly
	// hookOwn: an admin, or an owner of every project the webhook names
	// (the one in the path, or those a create's body gives); anyone else
	// gets the answer for a webhook or project that does not exist, or a
	// 403 saying what is needed when they may see the project
	// (routes_webhooks.go authorizeWebhook).
	hookOwn
)

// need is what the route c matched asks of the caller: its row's access
// in the table (routes.go). A request that matched no route is answered
// 404/405 without a token; a route mounted outside the table needs an
// admin, so nothing is open until someone decides who may call it.
func (t routeTable) need(c *gin.Context) need { return t.needOf(c.Request.Method, c.FullPath()) }

func (t routeTable) needOf(method, route string) need {
	if r, ok := t[routeKey{method, route}]; ok {
		return r.access
	}
	if route == "" {
		return public
	}
	return adminOnly
}

// mlflowNeed is what a proxied MLflow call needs: viewers call the
// routes the pinned MLflow serves as reads (by exact method and route,
// from its own route table), editors everything else.
func mlflowNeed(method, path string) need {
	if mlflowRouteReads(method, path) {
		return projRead
	}
	return projWrite
}

// mutating reports whether a call changes something and so is audited.
func mutating(method, route string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return route != "/deployments/:id/predict"
}
