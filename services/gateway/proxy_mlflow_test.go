package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
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
