package gateway

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/mlmodel"
)

// A tracking server that never answers the version's download uri holds
// the client's write for mlmodel.EventWait at most: the event goes
// without a signature, and one log line says why.
func TestVersionSignatureIsBounded(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	base, _ := url.Parse(hung.URL)
	var logs bytes.Buffer
	w := &registryWrite{g: &Gateway{log: slog.New(slog.NewTextHandler(&logs, nil))}, project: "p1", base: base}
	start := time.Now()
	sig := w.signature(t.Context(), "m", "1")
	if took := time.Since(start); took > mlmodel.EventWait+2*time.Second {
		t.Errorf("reading the signature took %v, want at most about %v", took, mlmodel.EventWait)
	}
	if sig != nil {
		t.Errorf("signature %v from a server that never answered", sig)
	}
	if n := strings.Count(logs.String(), "goes without it"); n != 1 {
		t.Errorf("%d log lines about the missing signature, want 1:\n%s", n, logs.String())
	}
}

// A model logged without a signature gives an event without one (no
// "signature": null), and no warning.
func TestVersionSignatureAbsent(t *testing.T) {
	dir := t.TempDir()
	mux := http.NewServeMux()
	mux.HandleFunc("/api/2.0/mlflow/model-versions/get-download-uri", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"artifact_uri": "` + dir + `"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if err := os.WriteFile(dir+"/MLmodel", []byte("flavors: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(srv.URL)
	var logs bytes.Buffer
	w := &registryWrite{g: &Gateway{log: slog.New(slog.NewTextHandler(&logs, nil))}, project: "p1", base: base}
	if sig := w.signature(t.Context(), "m", "1"); sig != nil || logs.Len() != 0 {
		t.Errorf("signature %#v, logs %q; want none and no warning", sig, logs.String())
	}
}
