package gateway

import (
	"net/http"
	"strings"
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
)

// projectGroups are the entity groups scoped to a project by project_id.
var projectGroups = []string{"/experiments", "/runs", "/artifacts", "/registered-models", "/model-versions", "/deployments"}

// requirement maps a matched route (gin's full path) to what it needs.
// Anything not listed needs an admin, so a new route is closed until
// someone decides who may call it.
func requirement(method, route string) need {
	read := method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
	switch {
	case route == "", route == "/healthz", route == "/readyz", route == "/metrics", route == "/healthcheck",
		route == "/signin", route == "/signout",
		strings.HasPrefix(route, "/openapi."), route == "/docs", strings.HasPrefix(route, "/docs/"),
		route == "/", strings.HasPrefix(route, "/ui/"): // the web panel's files; its data needs a token
		return public
	case route == "/me", route == "/events": // events_sse.go filters each event by role
		return signedIn
	case route == "/webhooks", strings.HasPrefix(route, "/webhooks/"):
		return signedIn // routes_webhooks.go: admins, or owners of every project the webhook names

	case route == "/audit", route == "/users", route == "/users/:name":
		return adminOnly
	case strings.HasPrefix(route, "/users/:name/tokens"):
		return selfOrAdmin
	case route == "/projects", route == "/projects/import": // an import is owned by its caller
		return signedIn
	case route == "/projects/:id/export": // a whole copy of the project
		return projOwn
	case route == "/projects/:id/mlflow/*path":
		return projRead // refined by mlflowNeed once the path is known
	case strings.HasPrefix(route, "/projects/:id"):
		if read {
			return projRead
		}
		return projOwn
	case route == "/deployments/:id/predict":
		return projRead // a prediction changes nothing
	}
	for _, g := range projectGroups {
		if route == g || strings.HasPrefix(route, g+"/") {
			if read {
				return projRead
			}
			return projWrite
		}
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
