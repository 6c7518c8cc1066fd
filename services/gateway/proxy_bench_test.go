package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
)

// BenchmarkProxiedCall is the auth path of a small proxied MLflow GET
// and POST without the heavy e2e setup: a gateway (real NATS with
// JetStream for the audit queue, real FerretDB behind it), a non-admin
// editor by membership calling with a token, and a tiny upstream on a
// Unix socket standing in for the tracking server. Each iteration calls
// through the gateway and straight to the upstream, interleaved, and
// reports the median difference: what the gateway itself adds. The POST
// is audited, as in the all-in-one panel: its entry is appended to an
// audit journal before the answer and queued after. Profile it with
//
//	go test -run '^$' -bench ProxiedCall -cpuprofile cpu.out ./services/gateway
//
// (tests/e2e BenchmarkProxyOverhead measures the same with real MLflow.)
//
// auth=off is the same gateway with auth off (what auth itself costs is
// the difference); spec-check=on is how the e2e suite runs its panels
// (MLPANEL_SPEC_CHECK).
func BenchmarkProxiedCall(b *testing.B) {
	onOff := map[bool]string{false: "off", true: "on"}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, c := range []struct{ auth, check bool }{{false, false}, {true, false}, {true, true}} {
			b.Run(fmt.Sprintf("%s/auth=%s/spec-check=%s", method, onOff[c.auth], onOff[c.check]), func(b *testing.B) {
				benchProxiedCall(b, method, c.auth, c.check)
			})
		}
	}
}

func benchProxiedCall(b *testing.B, method string, auth, specCheck bool) {
	w := newAuthWorld(b)
	w.g.log = discardLogger() // as a server logging at info: the access line is formatted and dropped
	w.g.cfg.SpecCheck = specCheck
	w.g.cfg.Auth = auth // the users and members are made with auth on; then the switch
	w.e = w.g.handler(w.g.routes())
	j, err := openAuditJournal(context.Background(), b.TempDir(), w.g.recordAudit, discardLogger())
	if err != nil {
		b.Fatal(err)
	}
	w.g.journal = j
	b.Cleanup(func() { j.close(context.Background()) })
	admin := w.admin
	editor := w.user("bencher")
	p := w.project(admin, "bench")
	w.must(w.do(admin, "PUT", "/projects/bench/members/bencher", map[string]string{"role": "editor"}), 200)

	body := []byte(`{"experiments": [{"experiment_id": "0", "name": "Default"}]}`)
	if method == http.MethodPost {
		body = []byte(`{}`) // as MLflow answers runs/log-metric
	}
	sock := w.runningUpstream(p, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write(body)
	}))

	gw := httptest.NewServer(w.e)
	b.Cleanup(gw.Close)
	path := "/api/2.0/mlflow/experiments/search?max_results=10"
	if method == http.MethodPost {
		path = "/api/2.0/mlflow/runs/log-metric"
	}
	const metric = `{"run_id": "0123456789abcdef0123456789abcdef", "key": "m", "value": 1, "timestamp": 1700000000000, "step": 1}`
	proxied := gw.URL + "/projects/bench/mlflow" + path
	direct := &http.Client{Transport: sockhttp.Transport(nil)}
	directURL := sockhttp.Target(sockhttp.URL(sock, path))
	do := func(client *http.Client, url, token string) time.Duration {
		var rd io.Reader
		if method == http.MethodPost {
			rd = strings.NewReader(metric)
		}
		req, _ := http.NewRequest(method, url, rd)
		if rd != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s %s: %d", method, url, resp.StatusCode)
		}
		return took
	}
	do(direct, directURL, "")
	do(http.DefaultClient, proxied, editor)
	b.ReportAllocs()
	b.ResetTimer()
	var added []time.Duration
	var sumDirect, sumProxied time.Duration
	for i := 0; i < b.N; i++ {
		// Each side goes first in every other pair: the second of two
		// calls in a row finds the machine warmer.
		var d, pr time.Duration
		if i%2 == 0 {
			d = do(direct, directURL, "")
			pr = do(http.DefaultClient, proxied, editor)
		} else {
			pr = do(http.DefaultClient, proxied, editor)
			d = do(direct, directURL, "")
		}
		sumDirect += d
		sumProxied += pr
		added = append(added, pr-d)
	}
	b.StopTimer()
	slices.Sort(added)
	b.ReportMetric(float64(sumProxied)/float64(sumDirect), "proxied/direct")
	b.ReportMetric(float64(added[len(added)/2].Microseconds()), "p50-added-µs")
}

// runningUpstream serves h on a Unix socket as project p's tracking
// server and marks p running there, as its running event would.
func (w *authWorld) runningUpstream(p projectInfo, h http.Handler) (sock string) {
	w.t.Helper()
	sock = filepath.Join(w.t.TempDir(), "mlflow.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		w.t.Fatal(err)
	}
	up := &http.Server{Handler: h}
	go func() { _ = up.Serve(ln) }()
	w.t.Cleanup(func() { _ = up.Close() })
	w.mu.Lock()
	for i := range w.projects {
		if w.projects[i].ID == p.ID {
			w.projects[i].Status = "running"
			w.projects[i].InternalURL = sockhttp.URL(sock, "")
			p = w.projects[i]
		}
	}
	w.mu.Unlock()
	w.g.projects.Apply(p.ID, p, true)
	return sock
}

// discardLogger formats lines at info level, as a server does, and drops them.
func discardLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})).With("service", "gateway")
}
