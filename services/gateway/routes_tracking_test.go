package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The tracking routes mount beside the others without gin conflicts
// (e.g. /runs/:id/restore next to /runs/:id/metrics/*key).
func TestTrackingRoutesMount(t *testing.T) {
	g := New(Config{MaxBody: 1 << 20}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h := g.Handler()
	// Without NATS nothing answers, but an unknown route is a 404 from
	// gin and a known one is not.
	for _, path := range []string{"/nope"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusNotFound {
			t.Fatalf("%s: %d", path, w.Code)
		}
	}
}

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
