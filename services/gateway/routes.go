package gateway

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// route maps one REST endpoint to one control-plane operation.
type route struct {
	method  string
	path    string // gin syntax
	subject string // mlpanel.<service>.<operation>
	status  int    // success status
	list    bool   // reply is events.List: answer the items with X-Total-Count
}

// controlRoutes are the endpoints that ride NATS request/reply. Each
// service's group lives beside it in its own file.
func controlRoutes() []route {
	var rs []route
	rs = append(rs, projectRoutes()...)
	rs = append(rs, extraRoutes...)
	return rs
}

// extraRoutes is where other services' route files add theirs (init).
var extraRoutes []route

// dataPlane mounts the handlers that proxy bytes over HTTP instead of
// riding NATS (predict, artifact downloads, the MLflow proxy); each
// service's file adds its own in init.
var dataPlane []func(g *Gateway, e *gin.Engine)

func projectRoutes() []route {
	const s = "mlpanel.projects."
	return []route{
		{http.MethodGet, "/projects", s + "list", http.StatusOK, true},
		{http.MethodPost, "/projects", s + "create", http.StatusCreated, false},
		{http.MethodGet, "/projects/:id", s + "get", http.StatusOK, false},
		{http.MethodPut, "/projects/:id", s + "update", http.StatusOK, false},
		{http.MethodDelete, "/projects/:id", s + "delete", http.StatusOK, false},
		{http.MethodPut, "/projects/:id/run", s + "run", http.StatusOK, false},
		{http.MethodPut, "/projects/:id/terminate", s + "terminate", http.StatusOK, false},
		{http.MethodPut, "/projects/:id/archive", s + "archive", http.StatusOK, false},
		{http.MethodPut, "/projects/:id/restore", s + "restore", http.StatusOK, false},
		{http.MethodGet, "/projects/:id/healthcheck", s + "healthcheck", http.StatusOK, false},
		{http.MethodGet, "/projects/:id/ping", s + "ping", http.StatusOK, false},
		{http.MethodGet, "/projects/:id/logs", s + "logs", http.StatusOK, false},
	}
}
