package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestTrackingRoutesMount: every row of the route table is mounted, and
// nothing else is; a request to each row's path reaches that row (no
// row shadows another, e.g. /runs/:id/restore beside
// /runs/:id/metrics/*key, or /projects/import beside /projects/:id); an
// unknown path is a 404.
func TestTrackingRoutesMount(t *testing.T) {
	g := New(Config{MaxBody: 1 << 20}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rows := g.routes()
	mounted := map[routeKey]bool{}
	for _, r := range g.Handler().(*gin.Engine).Routes() {
		mounted[routeKey{r.Method, r.Path}] = true
	}
	for _, r := range rows {
		if !mounted[routeKey{r.method, r.path}] {
			t.Errorf("%s %s is in the table but not mounted", r.method, r.path)
		}
		delete(mounted, routeKey{r.method, r.path})
	}
	for k := range mounted {
		t.Errorf("%s %s is mounted outside the route table", k.method, k.path)
	}

	// The same rows with a handler that says which row answered.
	e := gin.New()
	for _, r := range rows {
		e.Handle(r.method, r.path, func(c *gin.Context) { c.String(http.StatusOK, "%s %s", c.Request.Method, c.FullPath()) })
	}
	for _, r := range rows {
		path := catchAll.ReplaceAllString(param.ReplaceAllString(r.path, "x1"), "a/b")
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest(r.method, path, nil))
		if want := r.method + " " + r.path; w.Code != http.StatusOK || w.Body.String() != want {
			t.Errorf("%s %s reached %d %q, want the row %q", r.method, path, w.Code, w.Body.String(), want)
		}
	}
	w := httptest.NewRecorder()
	g.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/nope", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("/nope: %d", w.Code)
	}
}

var (
	param    = regexp.MustCompile(`:[^/]+`)
	catchAll = regexp.MustCompile(`\*.+$`)
)

func TestDisposition(t *testing.T) {
	for _, c := range []struct{ ct, name, want string }{
		{"text/csv; charset=utf-8", "a.csv", `inline; filename=a.csv`},
		{"text/html; charset=utf-8", "x.html", `attachment; filename=x.html`},
		{"image/svg+xml", "x.svg", `attachment; filename=x.svg`},
		{"application/octet-stream", "model.pkl", `attachment; filename=model.pkl`},
		{"application/json", "a b.json", `inline; filename="a b.json"`},
	} {
		if got := disposition(c.ct, c.name); got != c.want {
			t.Errorf("disposition(%q, %q) = %q, want %q", c.ct, c.name, got, c.want)
		}
	}
}
