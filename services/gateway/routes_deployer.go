package gateway

import "net/http"

func init() { extraRoutes = append(extraRoutes, deployerRoutes()...) }

// deployerRoutes are the deployments' control endpoints; predict is a
// data-plane proxy (proxy_deployer.go).
func deployerRoutes() []route {
	const s = "mlpanel.deployer."
	return []route{
		{http.MethodGet, "/deployments", s + "list", http.StatusOK, true},
		{http.MethodPost, "/deployments", s + "create", http.StatusAccepted, false},
		{http.MethodGet, "/deployments/:id", s + "get", http.StatusOK, false},
		{http.MethodDelete, "/deployments/:id", s + "delete", http.StatusOK, false},
		{http.MethodPut, "/deployments/:id/run", s + "run", http.StatusOK, false},
		{http.MethodPut, "/deployments/:id/stop", s + "stop", http.StatusOK, false},
		{http.MethodGet, "/deployments/:id/ping", s + "ping", http.StatusOK, false},
		{http.MethodGet, "/deployments/:id/logs", s + "logs", http.StatusOK, false},
		{http.MethodGet, "/deployments/:id/schema", s + "schema", http.StatusOK, false},
	}
}
