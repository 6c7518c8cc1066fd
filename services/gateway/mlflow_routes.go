package gateway

import (
	"net/http"
	"regexp"
	"strings"
	"sync"
)

// mlflowRouteSpec is one route of the pinned MLflow's tracking server
// (mlflow_routes_gen.go, generated from MLflow itself by
// mlflowroutes/gen.py): method, path pattern ({x} is one segment, {x...}
// one or more), whether it only reads, and MLflow's handler of it.
type mlflowRouteSpec struct {
	method, pattern string
	read            bool
	handler         string
}

type mlflowRouteMatcher struct {
	spec   mlflowRouteSpec
	prefix string // the literal start, to skip most patterns cheaply
	re     *regexp.Regexp
}

var (
	mlflowMatchersOnce sync.Once
	mlflowMatchers     map[string][]mlflowRouteMatcher // by method
)

var routeParam = regexp.MustCompile(`\{[^}]+\}`)

func compileMLflowRoutes() {
	mlflowMatchers = map[string][]mlflowRouteMatcher{}
	for _, s := range mlflowRoutes {
		var re strings.Builder
		re.WriteString("^")
		last := 0
		for _, loc := range routeParam.FindAllStringIndex(s.pattern, -1) {
			re.WriteString(regexp.QuoteMeta(s.pattern[last:loc[0]]))
			if strings.HasSuffix(s.pattern[loc[0]:loc[1]], "...}") {
				re.WriteString(".+")
			} else {
				re.WriteString("[^/]+")
			}
			last = loc[1]
		}
		re.WriteString(regexp.QuoteMeta(s.pattern[last:]))
		re.WriteString("$")
		prefix := s.pattern
		if i := strings.IndexByte(prefix, '{'); i >= 0 {
			prefix = prefix[:i]
		}
		mlflowMatchers[s.method] = append(mlflowMatchers[s.method],
			mlflowRouteMatcher{spec: s, prefix: prefix, re: regexp.MustCompile(re.String())})
	}
}

// mlflowRouteReads reports whether method on path (below the project's
// /mlflow) is a route of MLflow's that only reads; false for a route that
// writes and for anything MLflow does not serve, so what nobody has
// classified needs an editor. When several routes match, all must read.
func mlflowRouteReads(method, path string) bool {
	mlflowMatchersOnce.Do(compileMLflowRoutes)
	switch method {
	case http.MethodHead:
		method = http.MethodGet // Flask and Starlette answer HEAD with the GET handler
	case http.MethodOptions:
		// A CORS preflight changes nothing, but only for a route that exists.
		return mlflowRouteExists(path)
	}
	if !cleanRoutePath(path) {
		return false
	}
	matched := false
	for _, m := range mlflowMatchers[method] {
		if strings.HasPrefix(path, m.prefix) && m.re.MatchString(path) {
			if !m.spec.read {
				return false
			}
			matched = true
		}
	}
	return matched
}

func mlflowRouteExists(path string) bool {
	if !cleanRoutePath(path) {
		return false
	}
	for _, ms := range mlflowMatchers {
		for _, m := range ms {
			if strings.HasPrefix(path, m.prefix) && m.re.MatchString(path) {
				return true
			}
		}
	}
	return false
}

// cleanRoutePath refuses paths a server or client may resolve to another
// route than the one they spell: empty, "." and ".." segments.
func cleanRoutePath(path string) bool {
	if !strings.HasPrefix(path, "/") {
		return false
	}
	if path == "/" {
		return true
	}
	for _, seg := range strings.Split(path[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
