package gateway

import "testing"

func TestRequirement(t *testing.T) {
	cases := []struct {
		method, route string
		want          need
	}{
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
		{"GET", "/some/new/route", adminOnly},
	}
	for _, c := range cases {
		if got := requirement(c.method, c.route); got != c.want {
			t.Errorf("requirement(%s %s) = %d, want %d", c.method, c.route, got, c.want)
		}
	}
}
