package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRedirectsHideTheTrackingServer(t *testing.T) {
	internal, _ := url.Parse("http://127.0.0.1:45003/projects/4/mlflow")
	const prefix = "/projects/teamproj/mlflow"
	for loc, want := range map[string]string{
		// What MLflow answers a '//'-path with.
		"http://127.0.0.1:45003/projects/4/mlflow/api/2.0/mlflow/experiments/search?max_results=5": prefix + "/api/2.0/mlflow/experiments/search?max_results=5",
		"http://127.0.0.1:45003/projects/4/mlflow//api/x":                                          prefix + "//api/x",
		"/projects/4/mlflow/static-files/index.html#/runs":                                         prefix + "/static-files/index.html#/runs",
		"/projects/4/mlflow": prefix,
		"index.html":         "index.html",
		"http://127.0.0.1:45004/projects/4/mlflow/x": "", // another port
		"http://evil.example/projects/4/mlflow/x":    "",
		"//evil.example/projects/4/mlflow/x":         "",
		"/projects/5/mlflow/x":                       "", // another project's path
		"/projects/4/mlflowx":                        "",
		"/elsewhere":                                 "",
		"javascript:alert(1)":                        "",
	} {
		got, ok := mapInternalURL(loc, internal, prefix)
		if want == "" {
			if ok {
				t.Errorf("%q became %q, want it refused", loc, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("%q became %q (%v), want %q", loc, got, ok, want)
		}
	}

	resp := &http.Response{StatusCode: http.StatusPermanentRedirect, Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(`<a href="http://127.0.0.1:45003/projects/4/mlflow/x">redirecting</a>`))}
	resp.Header.Set("Location", "http://127.0.0.1:45003/projects/4/mlflow/x")
	resp.Header.Set("Content-Length", "70")
	if err := hideRedirect(resp, internal, prefix); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Location") != prefix+"/x" || len(body) != 0 || resp.Header.Get("Content-Length") != "" {
		t.Errorf("redirect passed on as Location %q, body %q", resp.Header.Get("Location"), body)
	}
	resp = &http.Response{StatusCode: http.StatusFound, Header: http.Header{"Location": {"http://10.0.0.7:5000/"}}, Body: http.NoBody}
	var fe *foreignRedirect
	if err := hideRedirect(resp, internal, prefix); !errors.As(err, &fe) {
		t.Errorf("a redirect to another host: %v, want it refused", err)
	}
}

// blockingLog holds the access log line of each proxied MLflow call
// until released, as a slow log sink would.
type blockingLog struct {
	slog.Handler
	release chan struct{}
}

func (h blockingLog) Handle(ctx context.Context, r slog.Record) error {
	proxied := false
	r.Attrs(func(a slog.Attr) bool {
		proxied = proxied || (a.Key == "route" && a.Value.String() == mlflowRoute)
		return !proxied
	})
	if r.Message == "http request" && proxied {
		<-h.release
	}
	return h.Handler.Handle(ctx, r)
}

func (h blockingLog) WithAttrs(as []slog.Attr) slog.Handler {
	return blockingLog{h.Handler.WithAttrs(as), h.release}
}

// A proxied MLflow answer reaches the client as soon as MLflow gave it,
// not once the gateway has also written its access log, metrics and
// audit: those cost every call of the stock client time for nothing.
func TestProxiedAnswerDoesNotWaitForTheAccessLog(t *testing.T) {
	w := newAuthWorld(t)
	release := make(chan struct{})
	var once sync.Once
	w.g.log = slog.New(blockingLog{slog.NewJSONHandler(io.Discard, nil), release})
	w.e = w.g.handler(w.g.routes())
	p := w.project(w.admin, "quick")
	w.runningUpstream(p, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(`{"experiment": {"experiment_id": "0"}}`)) // with a Content-Length, as MLflow's answers
	}))
	gw := httptest.NewServer(w.e)
	t.Cleanup(gw.Close)
	// Cleanups run last first: the held line goes before the server
	// waits for its handlers.
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	req, _ := http.NewRequest(http.MethodGet, gw.URL+"/projects/quick/mlflow/api/2.0/mlflow/experiments/get?experiment_id=0", nil)
	req.Header.Set("Authorization", "Bearer "+w.admin)
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("the proxied answer waited for the access log: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"experiment_id": "0"`) {
		t.Fatalf("proxied answer %d %q (%v) while the access log is held", resp.StatusCode, body, err)
	}
	once.Do(func() { close(release) })
}
