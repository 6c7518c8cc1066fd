package gateway

import (
	"net/http"

	"github.com/gin-gonic/gin"

	deployer "github.com/mlpanel/mlpanel/services/deployer/client"
	projects "github.com/mlpanel/mlpanel/services/projects/client"
	tracking "github.com/mlpanel/mlpanel/services/tracking/client"
)

// endpoint is one row of the gateway's API: what a caller sends (method
// and gin path), what they need with auth on, and what answers it.
type endpoint struct {
	method, path string
	access       need // policy.go; a route not in the table needs an admin
	// stream marks the data plane: bodies of any size that take as long
	// as they take, so no overall deadline, no body limit and no peeking
	// at the body (observe.go limits, scope.go).
	stream  bool
	handler gin.HandlerFunc
	subject string // the NATS operation a `call` row makes; "" for the others
}

// route maps a REST endpoint to one control-plane operation: the answer
// is the reply of one NATS request (gateway.go control).
type route struct {
	method  string
	path    string // gin syntax
	subject string // mlpanel.<service>.<operation>
	status  int    // success status
	list    bool   // reply is events.List: answer the items with X-Total-Count
}

const (
	get, head, post, put, patch, del = http.MethodGet, http.MethodHead, http.MethodPost,
		http.MethodPut, http.MethodPatch, http.MethodDelete
	ok, created, accepted = http.StatusOK, http.StatusCreated, http.StatusAccepted
	item, list            = false, true
)

// routes is the gateway's whole HTTP API, in one place. Each row is
// method, path, who may call it (auth on), and the handler: `call` rows
// are one NATS request to a service, `serve` rows are answered by the
// gateway, `stream` rows move bytes over HTTP (the data plane).
func (g *Gateway) routes() []endpoint {
	call := func(method, path string, access need, subject string, status int, isList bool) endpoint {
		return endpoint{method, path, access, false, g.control(route{method, path, subject, status, isList}), subject}
	}
	serve := func(method, path string, access need, h gin.HandlerFunc) endpoint {
		return endpoint{method, path, access, false, h, ""}
	}
	stream := func(method, path string, access need, h gin.HandlerFunc) endpoint {
		return endpoint{method, path, access, true, h, ""}
	}
	predict := newPredictProxy(g)
	mlflow := g.mlflowProxy()
	rs := []endpoint{
		// Operations and documents: no token needed.
		serve(get, "/healthz", public, g.healthz),
		serve(get, "/readyz", public, g.ready),
		serve(get, "/metrics", public, g.metrics()),
		serve(get, "/healthcheck", public, healthcheck),
		serve(get, "/openapi.yaml", public, serveSpecYAML),
		serve(get, "/openapi.json", public, serveSpecJSON),
		serve(get, "/docs", public, serveDocsPage),
		serve(get, "/docs/*file", public, serveDocsFile),
		serve(get, "/", public, serveWebIndex), // the web panel; its data needs a token
		serve(get, "/ui/*file", public, serveWebFile),
		serve(get, "/signin", public, g.signInForm),
		serve(post, "/signin", public, g.signIn),
		serve(post, "/signout", public, g.signOut),

		// Accounts, tokens and the audit log: the gateway's own data.
		serve(get, "/me", signedIn, g.withAccess(g.me)),
		serve(get, "/users", adminOnly, g.withAccess(g.listUsers)),
		serve(post, "/users", adminOnly, g.withAccess(g.createUser)),
		serve(get, "/users/:name", adminOnly, g.withAccess(g.getUser)),
		serve(del, "/users/:name", adminOnly, g.withAccess(g.deleteUser)),
		serve(get, "/users/:name/tokens", selfOrAdmin, g.withAccess(g.listTokens)),
		serve(post, "/users/:name/tokens", selfOrAdmin, g.withAccess(g.createToken)),
		serve(del, "/users/:name/tokens/:token", selfOrAdmin, g.withAccess(g.deleteToken)),
		serve(get, "/audit", adminOnly, g.withAccess(g.listAudit)),
		stream(get, "/events", signedIn, g.followEvents), // filtered per event by the caller's role

		// Projects (the projects service).
		call(get, "/projects", signedIn, projects.Subject("list"), ok, list),
		call(post, "/projects", signedIn, projects.Subject("create"), created, item),
		call(get, "/projects/:id", projRead, projects.Subject("get"), ok, item),
		call(put, "/projects/:id", projOwn, projects.Subject("update"), ok, item),
		call(del, "/projects/:id", projOwn, projects.Subject("delete"), ok, item),
		call(put, "/projects/:id/run", projOwn, projects.Subject("run"), ok, item),
		call(put, "/projects/:id/terminate", projOwn, projects.Subject("terminate"), ok, item),
		call(put, "/projects/:id/archive", projOwn, projects.Subject("archive"), ok, item),
		call(put, "/projects/:id/restore", projOwn, projects.Subject("restore"), ok, item),
		call(get, "/projects/:id/healthcheck", projRead, projects.Subject("healthcheck"), ok, item),
		call(get, "/projects/:id/ping", projRead, projects.Subject("ping"), ok, item),
		call(get, "/projects/:id/logs", projRead, projects.Subject("logs"), ok, item),
		call(get, "/projects/:id/stats", projRead, projects.Subject("stats"), ok, item),
		call(get, "/stats", adminOnly, projects.Subject("stats-all"), ok, item), // every project
		call(post, "/projects/:id/clone", projOwn, projects.Subject("clone"), created, item),
		stream(get, "/projects/:id/export", projOwn, g.exportProject), // a whole copy of the project
		stream(post, "/projects/import", signedIn, g.importProject),   // owned by its caller
		serve(get, "/projects/:id/members", projRead, g.withAccess(g.listMembers)),
		serve(put, "/projects/:id/members/:user", projOwn, g.withAccess(g.setMember)),
		serve(del, "/projects/:id/members/:user", projOwn, g.withAccess(g.removeMember)),

		// Experiments, runs, artifacts and the model registry (the
		// tracking service), scoped by project_id.
		call(get, "/experiments", projRead, tracking.Subject("experiments.list"), ok, list),
		call(post, "/experiments", projWrite, tracking.Subject("experiments.create"), created, item),
		call(get, "/experiments/:id", projRead, tracking.Subject("experiments.get"), ok, item),
		call(del, "/experiments/:id", projWrite, tracking.Subject("experiments.delete"), ok, item),
		call(put, "/experiments/:id/restore", projWrite, tracking.Subject("experiments.restore"), ok, item),
		call(get, "/runs", projRead, tracking.Subject("runs.list"), ok, list),
		call(get, "/runs/:id", projRead, tracking.Subject("runs.get"), ok, item),
		call(del, "/runs/:id", projWrite, tracking.Subject("runs.delete"), ok, item),
		call(put, "/runs/:id/restore", projWrite, tracking.Subject("runs.restore"), ok, item),
		// *key: metric keys may hold slashes (train/loss).
		call(get, "/runs/:id/metrics/*key", projRead, tracking.Subject("runs.metric-history"), ok, list),
		call(get, "/artifacts", projRead, tracking.Subject("artifacts.list"), ok, list),
		stream(get, "/artifacts/content", projRead, g.artifactContent),
		stream(head, "/artifacts/content", projRead, g.artifactContent),
		call(get, "/registered-models", projRead, tracking.Subject("registered-models.list"), ok, list),
		call(post, "/registered-models", projWrite, tracking.Subject("registered-models.create"), created, item),
		call(get, "/registered-models/:name", projRead, tracking.Subject("registered-models.get"), ok, item),
		call(del, "/registered-models/:name", projWrite, tracking.Subject("registered-models.delete"), ok, item),
		call(get, "/model-versions", projRead, tracking.Subject("model-versions.list"), ok, list),
		call(get, "/model-versions/:version", projRead, tracking.Subject("model-versions.get"), ok, item),
		call(del, "/model-versions/:version", projWrite, tracking.Subject("model-versions.delete"), ok, item),
		call(put, "/model-versions/:version/aliases/:alias", projWrite, tracking.Subject("model-versions.set-alias"), ok, item),
		call(del, "/model-versions/:version/aliases/:alias", projWrite, tracking.Subject("model-versions.remove-alias"), ok, item),

		// Across projects (the tracking service, from each project's
		// database): narrowed to the projects the caller may view, as the
		// project list is.
		call(get, "/search/runs", signedIn, tracking.Subject("search.runs"), ok, list),
		call(get, "/search/models", signedIn, tracking.Subject("search.models"), ok, list),
		call(get, "/compare/runs", signedIn, tracking.Subject("compare.runs"), ok, item),

		// Signed webhooks (routes_webhooks.go): admins, or owners of every
		// project a webhook names (hookOwn); the list shows each caller
		// the webhooks they may manage.
		serve(get, "/webhooks", signedIn, g.withWebhooks(g.listWebhooks)),
		serve(post, "/webhooks", hookOwn, g.withWebhooks(g.createWebhook)),
		serve(get, "/webhooks/:id", hookOwn, g.withWebhooks(g.getWebhook)),
		serve(del, "/webhooks/:id", hookOwn, g.withWebhooks(g.deleteWebhook)),
		serve(get, "/webhooks/:id/deliveries", hookOwn, g.withWebhooks(g.listDeliveries)),
		serve(post, "/webhooks/:id/test", hookOwn, g.withWebhooks(g.testWebhook)),

		// Deployments (the deployer), authorised on the owning project.
		call(get, "/deployments", projRead, deployer.Subject("list"), ok, list),
		call(post, "/deployments", projWrite, deployer.Subject("create"), accepted, item),
		call(get, "/deployments/:id", projRead, deployer.Subject("get"), ok, item),
		call(patch, "/deployments/:id", projWrite, deployer.Subject("update"), ok, item), // idle_timeout, min_awake
		call(del, "/deployments/:id", projWrite, deployer.Subject("delete"), ok, item),
		call(put, "/deployments/:id/run", projWrite, deployer.Subject("run"), ok, item),
		call(put, "/deployments/:id/stop", projWrite, deployer.Subject("stop"), ok, item),
		call(get, "/deployments/:id/ping", projRead, deployer.Subject("ping"), ok, item),
		call(get, "/deployments/:id/stats", projRead, deployer.Subject("stats"), ok, item),
		call(get, "/deployments/:id/logs", projRead, deployer.Subject("logs"), ok, item),
		call(get, "/deployments/:id/schema", projRead, deployer.Subject("schema"), ok, item),
		stream(post, "/deployments/:id/predict", projRead, predict.handle), // a prediction changes nothing
	}
	// Each project's own MLflow, for the stock client and the MLflow UI;
	// viewers may call MLflow's reads, editors the rest (mlflowNeed).
	for _, m := range []string{get, head, post, put, patch, del, http.MethodOptions} {
		rs = append(rs, stream(m, mlflowRoute, projRead, mlflow))
	}
	return rs
}

// routeKey finds a matched route's row: method and gin path.
type routeKey struct{ method, path string }

// routeTable indexes the rows the gateway serves.
type routeTable map[routeKey]endpoint

func newRouteTable(rs []endpoint) routeTable {
	t := make(routeTable, len(rs))
	for _, r := range rs {
		t[routeKey{r.method, r.path}] = r
	}
	return t
}

// of is the row of the route c matched; ok is false for a request that
// matched none (gin's 404 and 405) and for a route mounted outside the
// table.
func (t routeTable) of(c *gin.Context) (endpoint, bool) {
	r, ok := t[routeKey{c.Request.Method, c.FullPath()}]
	return r, ok
}
