package gateway

import (
	"io"
	"log/slog"
	"testing"
)

// TestRequirement: what the route table asks of callers, and deny by
// default for a route mounted outside it.
func TestRequirement(t *testing.T) {
	cases := []struct {
		method, route string
		want          need
	}{
		{"GET", "", public}, // no route: the 404 needs no token
		{"GET", "/healthz", public},
		{"GET", "/openapi.json", public},
		{"GET", "/projects", signedIn},
		{"POST", "/projects", signedIn},
		{"GET", "/search/runs", signedIn}, // narrowed to the caller's projects like GET /projects
		{"GET", "/search/models", signedIn},
		{"GET", "/compare/runs", signedIn},
		{"GET", "/projects/:id", projRead},
		{"GET", "/projects/:id/logs", projRead},
		{"PUT", "/projects/:id/run", projOwn},
		{"DELETE", "/projects/:id", projOwn},
		{"PUT", "/projects/:id/members/:user", projOwn},
		{"GET", "/experiments", projRead},
		{"POST", "/experiments", projWrite},
		{"DELETE", "/runs/:id", projWrite},
		{"POST", "/deployments", projWrite},
		{"POST", "/deployments/:id/predict", projRead},
		{"PUT", "/deployments/:id/stop", projWrite},
		{"GET", "/users", adminOnly},
		{"POST", "/users/:name/tokens", selfOrAdmin},
		{"GET", "/audit", adminOnly},
		{"GET", "/stats", adminOnly},
		// Webhooks: the ownership rule is the route's, decided before the
		// handler runs; the list is narrowed to what the caller manages.
		{"GET", "/webhooks", signedIn},
		{"POST", "/webhooks", hookOwn},
		{"GET", "/webhooks/:id", hookOwn},
		{"DELETE", "/webhooks/:id", hookOwn},
		{"GET", "/webhooks/:id/deliveries", hookOwn},
		{"POST", "/webhooks/:id/test", hookOwn},
		{"GET", "/some/new/route", adminOnly}, // mounted outside the table
	}
	g := New(Config{MaxBody: 1 << 20}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	table := newRouteTable(g.routes())
	for _, c := range cases {
		if got := table.needOf(c.method, c.route); got != c.want {
			t.Errorf("%s %s needs %d, want %d", c.method, c.route, got, c.want)
		}
	}
}
