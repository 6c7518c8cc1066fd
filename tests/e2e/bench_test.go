package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
	projects "github.com/mlpanel/mlpanel/services/projects/client"
)

// benchClient reaches a gateway and, for the baseline, a tracking server
// on its Unix socket.
var benchClient = &http.Client{Transport: sockhttp.Transport(nil)}

// benchTarget is one MLflow server reached through a gateway and directly.
type benchTarget struct {
	proxied, direct string // base URLs up to /api/2.0/mlflow
	token           string // "" with auth off
	runID           string
	// directClient reaches the server itself: with auth on it listens on
	// a Unix socket only the panel's user can open.
	directClient *http.Client
}

var (
	benchOnce     sync.Once
	benchOff      benchTarget
	benchOn       benchTarget
	benchSetupErr string
)

// benchAuthAddr is the gateway of the panel with auth on.
const benchAuthAddr = "127.0.0.1:15193"

// benchSetup starts, once, a project on the shared panel (auth off) and a
// second panel with auth on, where a non-admin editor calls with a token.
func benchSetup(b *testing.B) {
	benchOnce.Do(func() {
		defer func() {
			if benchOn.proxied == "" && benchSetupErr == "" {
				benchSetupErr = "the benchmark setup failed; see the first benchmark"
			}
		}()
		p := runningProject(b, "bench")
		benchOff = benchTarget{
			proxied: panel.URL + "/projects/" + p.Name + "/mlflow/api/2.0/mlflow",
			direct:  sockhttp.Target(p.InternalURL) + "/api/2.0/mlflow", // the server itself, on its socket
		}
		benchOff.directClient = benchClient // the server listens on a socket
		benchOff.runID = benchRun(b, benchOff.directClient, benchOff.direct)

		cfg := panelCfg
		cfg.Home = b.TempDir()
		cfg.Projects.Home = cfg.Home
		cfg.Projects.Ports = proc.Range{Lo: 15160, Hi: 15169}
		cfg.Projects.StopOnExit = true
		cfg.Gateway.Addr = benchAuthAddr
		cfg.Gateway.Auth = true
		cfg.Gateway.AdminToken = "mlp_bench-admin-token"
		s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Close)
		admin := cfg.Gateway.AdminToken
		as := func(token, method, path string, body any, status int) []byte {
			var rd io.Reader
			if body != nil {
				raw, _ := json.Marshal(body)
				rd = bytes.NewReader(raw)
			}
			req, _ := http.NewRequest(method, s.URL+path, rd)
			if rd != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := benchClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != status {
				b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
			}
			return out
		}
		as(admin, "POST", "/users", map[string]any{"name": "bencher"}, 201)
		var tok struct{ Token string }
		_ = json.Unmarshal(as(admin, "POST", "/users/bencher/tokens", map[string]string{"name": "bench"}, 201), &tok)
		var ap project
		_ = json.Unmarshal(as(admin, "POST", "/projects", map[string]string{"name": "bench-auth"}, 201), &ap)
		// An editor by membership: every call looks the role up.
		as(admin, "PUT", "/projects/bench-auth/members/bencher", map[string]string{"role": "editor"}, 200)
		as(admin, "PUT", "/projects/bench-auth/run", nil, 200)
		deadline := time.Now().Add(3 * time.Minute)
		for {
			_ = json.Unmarshal(as(admin, "GET", "/projects/bench-auth", nil, 200), &ap)
			if ap.Status == "running" {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("the auth panel's project is %s", ap.Status)
			}
			time.Sleep(300 * time.Millisecond)
		}
		// With auth on, mlflowUri is the gateway's address: the server
		// itself is on a socket, which the projects service names.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		internal, err := projects.New(s.NC).Get(ctx, ap.ID)
		cancel()
		if err != nil || internal.InternalURL == "" {
			b.Fatalf("the auth panel's project has no internal address %q: %v", internal.InternalURL, err)
		}
		benchOn = benchTarget{
			proxied:      s.URL + "/projects/bench-auth/mlflow/api/2.0/mlflow",
			direct:       sockhttp.Target(internal.InternalURL) + "/api/2.0/mlflow",
			token:        tok.Token,
			directClient: &http.Client{Transport: sockhttp.Transport(nil)},
		}
		benchOn.runID = benchRun(b, benchOn.directClient, benchOn.direct)
	})
	if benchOn.proxied == "" {
		b.Fatal(benchSetupErr)
	}
}

// benchRun creates an experiment and a run in it to log into.
func benchRun(b *testing.B, client *http.Client, base string) string {
	post := func(path, body string, out any) {
		resp, err := client.Post(base+path, "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, out) != nil {
			b.Fatalf("POST %s%s: %d %.300s", base, path, resp.StatusCode, raw)
		}
	}
	var exp struct {
		ID string `json:"experiment_id"`
	}
	post("/experiments/create", fmt.Sprintf(`{"name": "bench-%d"}`, time.Now().UnixNano()), &exp)
	var out struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	post("/runs/create", fmt.Sprintf(`{"experiment_id": %q}`, exp.ID), &out)
	return out.Run.Info.RunID
}

// benchCall is one kind of call: a method, a path and a body maker.
type benchCall struct {
	method, path string
	body         func(runID string, i int) []byte
}

var benchCalls = []struct {
	name string
	call benchCall
}{
	{"GET", benchCall{http.MethodGet, "/experiments/search?max_results=10", nil}},
	{"POST", benchCall{http.MethodPost, "/runs/log-metric", func(run string, i int) []byte {
		return []byte(fmt.Sprintf(`{"run_id": %q, "key": "m", "value": %d, "timestamp": 1700000000000, "step": %d}`, run, i, i))
	}}},
	{"log_batch-1000", benchCall{http.MethodPost, "/runs/log-batch", func(run string, i int) []byte {
		type metric struct {
			Key       string  `json:"key"`
			Value     float64 `json:"value"`
			Timestamp int64   `json:"timestamp"`
			Step      int     `json:"step"`
		}
		ms := make([]metric, 1000)
		for j := range ms {
			ms[j] = metric{Key: fmt.Sprintf("batch%d", j%10), Value: float64(j), Timestamp: 1700000000000, Step: i*1000 + j}
		}
		raw, _ := json.Marshal(map[string]any{"run_id": run, "metrics": ms})
		return raw
	}}},
}

// BenchmarkProxyOverhead measures MLflow calls through the gateway's proxy
// against the same calls straight to the tracking server, interleaved in
// the same run, with auth off and on (a non-admin editor with a token),
// and reports the ratio and the median added per call: the price of the
// single entry point.
//
//	make bench
func BenchmarkProxyOverhead(b *testing.B) {
	benchSetup(b)
	for _, auth := range []struct {
		name string
		t    *benchTarget
	}{{"auth=off", &benchOff}, {"auth=on", &benchOn}} {
		for _, bc := range benchCalls {
			b.Run(auth.name+"/"+bc.name, func(b *testing.B) { benchProxy(b, *auth.t, bc.call) })
		}
	}
}

func benchProxy(b *testing.B, t benchTarget, bc benchCall) {
	seq := 0
	do := func(client *http.Client, base, token string) time.Duration {
		seq++
		var body io.Reader
		if bc.body != nil {
			body = bytes.NewReader(bc.body(t.runID, seq))
		}
		req, _ := http.NewRequest(bc.method, base+bc.path, body)
		if body != nil {
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
			b.Fatalf("%s %s: %d", bc.method, base+bc.path, resp.StatusCode)
		}
		return took
	}
	do(t.directClient, t.direct, "") // warm both paths and the caches
	do(http.DefaultClient, t.proxied, t.token)
	b.ResetTimer()
	var direct, proxied []time.Duration
	for i := 0; i < b.N; i++ {
		// Interleave so drift in the machine's load hits both sides alike.
		for j := 0; j < 5; j++ {
			direct = append(direct, do(t.directClient, t.direct, ""))
			proxied = append(proxied, do(http.DefaultClient, t.proxied, t.token))
		}
	}
	b.StopTimer()
	sum := func(ds []time.Duration) (s time.Duration) {
		for _, d := range ds {
			s += d
		}
		return s
	}
	// The median of the pairs' differences: what the gateway adds to a
	// typical call, unmoved by the odd slow call on either side.
	added := make([]time.Duration, len(direct))
	for i := range direct {
		added[i] = proxied[i] - direct[i]
	}
	slices.Sort(added)
	n := float64(len(direct))
	b.ReportMetric(float64(sum(direct).Microseconds())/n, "direct-µs/call")
	b.ReportMetric(float64(sum(proxied).Microseconds())/n, "proxied-µs/call")
	b.ReportMetric(float64(sum(proxied))/float64(sum(direct)), "proxied/direct")
	b.ReportMetric(float64(added[len(added)/2].Microseconds()), "p50-added-µs")
}
