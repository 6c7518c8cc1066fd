package gateway

import "net/http"

// Searches across every project the caller may view (issue 16), answered
// by the tracking service from each project's database. They name no
// project: with auth on the gateway narrows them to the caller's projects
// (policy.go, signedIn), as it does the project list.
func init() { extraRoutes = append(extraRoutes, searchRoutes()...) }

func searchRoutes() []route {
	const s = "mlpanel.tracking."
	return []route{
		{http.MethodGet, "/search/runs", s + "search.runs", http.StatusOK, true},
		{http.MethodGet, "/search/models", s + "search.models", http.StatusOK, true},
		{http.MethodGet, "/compare/runs", s + "compare.runs", http.StatusOK, false},
	}
}
