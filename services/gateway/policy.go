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

// mlflowReadPOSTs are MLflow endpoints that read although they are POSTs,
// so viewers may call them through the proxy.
var mlflowReadPOSTs = []string{
	"/runs/search", "/experiments/search", "/experiments/get-by-name",
	"/registered-models/search", "/model-versions/search", "/logged-models/search",
	"/metrics/get-history-bulk-interval", "/traces/search",
}

// requirement maps a matched route (gin's full path) to what it needs.
// Anything not listed needs an admin, so a new route is closed until
// someone decides who may call it.
func requirement(method, route string) need {
	read := method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
	switch {
	case route == "", route == "/healthz", route == "/readyz", route == "/metrics",
		strings.HasPrefix(route, "/openapi."), route == "/docs", strings.HasPrefix(route, "/docs/"):
		return public
	case route == "/me":
		return signedIn
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

// mlflowNeed is what a proxied MLflow call needs: viewers read, editors write.
func mlflowNeed(method, path string) need {
	if method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions {
		return projRead
	}
	for _, p := range mlflowReadPOSTs {
		if strings.HasSuffix(path, p) {
			return projRead
		}
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
