package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	projects "github.com/mlpanel/mlpanel/services/projects/client"
)

// benchTarget is one MLflow server reached through a gateway and directly.
type benchTarget struct {
	proxied, direct string // base URLs of the server's MLflow, without /api/2.0/mlflow
	token           string // "" with auth off
	runID           string
}

func (t benchTarget) api(proxied bool) string {
	if proxied {
		return t.proxied + "/api/2.0/mlflow"
	}
	return t.direct + "/api/2.0/mlflow"
}

var (
	benchOnce     sync.Once
	benchOff      benchTarget
	benchOn       benchTarget
	benchSetupErr string
	// benchHTTP is one keep-alive client for every side, as a tracking
	// client holds one session.
	benchHTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
)

// benchAuthAddr is the gateway of the panel with auth on.
const benchAuthAddr = "127.0.0.1:15193"

// benchSetup starts, once, two panels of their own, one with auth off and
// one with auth on (where a non-admin editor calls with a token), each
// with one running project. Both are set up as a team server runs: no
// OpenAPI checking of every body (MLPANEL_SPEC_CHECK is for tests), and
// tracking servers on loopback TCP (MLPANEL_TRACKING_TCP) so the stock
// Python client, which cannot dial a Unix socket, can reach them directly
// for the baseline. Both hops of a proxied call are then TCP, like the
// direct call's one.
func benchSetup(b *testing.B) {
	benchOnce.Do(func() {
		defer func() {
			if benchOn.proxied == "" && benchSetupErr == "" {
				benchSetupErr = "the benchmark setup failed; see the first benchmark"
			}
		}()
		benchOff = benchPanel(b, false, "", proc.Range{Lo: 15176, Hi: 15179})
		benchOn = benchPanel(b, true, benchAuthAddr, proc.Range{Lo: 15160, Hi: 15169})
	})
	if benchOn.proxied == "" {
		b.Fatal(benchSetupErr)
	}
}

// benchPanel starts a panel and a running project on it, and makes a run
// to log into.
func benchPanel(b *testing.B, auth bool, addr string, ports proc.Range) benchTarget {
	cfg := panelCfg
	cfg.Home = b.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.Ports = ports
	cfg.Projects.StopOnExit = true
	cfg.Projects.TCP = true
	cfg.Gateway.SpecCheck = false
	cfg.Gateway.Addr = "127.0.0.1:0"
	cfg.Gateway.Auth = auth
	cfg.Gateway.AdminToken = ""
	if auth {
		cfg.Gateway.Addr = addr
		cfg.Gateway.AdminToken = "mlp_bench-admin-token"
	}
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
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := benchHTTP.Do(req)
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
	name := "bench-off"
	var token string
	if auth {
		name = "bench-auth"
		as(admin, "POST", "/users", map[string]any{"name": "bencher"}, 201)
		var tok struct{ Token string }
		_ = json.Unmarshal(as(admin, "POST", "/users/bencher/tokens", map[string]string{"name": "bench"}, 201), &tok)
		token = tok.Token
	}
	var p project
	_ = json.Unmarshal(as(admin, "POST", "/projects", map[string]string{"name": name}, 201), &p)
	if auth {
		// An editor by membership: every call looks the role up.
		as(admin, "PUT", "/projects/"+name+"/members/bencher", map[string]string{"role": "editor"}, 200)
	}
	as(admin, "PUT", "/projects/"+name+"/run", nil, 200)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		_ = json.Unmarshal(as(admin, "GET", "/projects/"+name, nil, 200), &p)
		if p.Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the bench panel's project is %s", p.Status)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// mlflowUri is the gateway's address; the server itself is at the
	// internal address, which the projects service names.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	internal, err := projects.New(s.NC).Get(ctx, p.ID)
	cancel()
	if err != nil || !strings.HasPrefix(internal.InternalURL, "http://127.0.0.1:") {
		b.Fatalf("the bench project has no TCP address %q: %v", internal.InternalURL, err)
	}
	t := benchTarget{
		proxied: s.URL + "/projects/" + name + "/mlflow",
		direct:  strings.TrimSuffix(internal.InternalURL, "/"),
		token:   token,
	}
	t.runID = benchRun(b, t.api(false))
	return t
}

// benchRun creates an experiment and a run in it to log into.
func benchRun(b *testing.B, base string) string {
	post := func(path, body string, out any) {
		resp, err := benchHTTP.Post(base+path, "application/json", bytes.NewReader([]byte(body)))
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

// Each benchmark iteration of a call makes benchQuadsPerOp quads (the
// call direct and proxied, auth off and auth on), so `-benchtime 20x`
// gives 480 paired samples per side; the samples are cut into
// benchRounds consecutive rounds. benchQuadsPerOp is even, so every
// iteration has as many direct-first as proxied-first pairs.
const (
	benchQuadsPerOp = 24
	benchRounds     = 5
	benchBatchShare = 6 // log_batch-1000: 4 quads per iteration, 80 pairs per side at 20x
	// benchAddedTarget is the promise of issue 10: what the gateway adds
	// to a small call with auth on, p50.
	benchAddedTarget = 500 * time.Microsecond
)

// benchRow is one line of the table BenchmarkProxyOverhead prints.
type benchRow struct {
	call                string
	direct              time.Duration // p50 of the direct calls (auth-off server)
	off, offMin, offMax time.Duration // added by the proxy, auth off: p50 of the round p50s, their min and max
	on, onMin, onMax    time.Duration // the same with auth on
	target              string
	ratioOff, ratioOn   float64 // stock client rows: proxied/direct workload time
	ratioOffR, ratioOnR [2]float64
	stock               bool
}

// BenchmarkProxyOverhead measures MLflow calls through the gateway's proxy
// against the same calls straight to the tracking server, with auth off
// and on (a non-admin editor with a token). Every iteration makes the
// call four ways (direct and proxied on the auth-off panel, direct and
// proxied on the auth-on panel), so each proxied call has a direct call
// to the same server made just before or after it: the pair's difference
// is what the gateway added, and drift in the machine's load falls on
// both of a pair alike. Per call it reports the p50 of those differences
// (order-balanced, see roundsP50) in each of 5 consecutive rounds
// (median, min and max of the rounds) and prints a table. The stock-client row is the
// whole Python MLflow client workload (stockWorkload), proxied time over
// direct time, per round.
//
//	make bench   (or: go test -run '^$' -bench ProxyOverhead -benchtime 20x ./tests/e2e/)
func BenchmarkProxyOverhead(b *testing.B) {
	benchSetup(b)
	var rows []benchRow
	for _, bc := range benchCalls {
		var row benchRow
		b.Run(bc.name, func(b *testing.B) { row = benchProxy(b, bc.name, bc.call) })
		rows = append(rows, row)
	}
	var row benchRow
	b.Run("stock-client", func(b *testing.B) { row = benchStockClient(b) })
	rows = append(rows, row)
	printBenchTable(rows)
}

func benchProxy(b *testing.B, name string, bc benchCall) benchRow {
	seq := 0
	do := func(t benchTarget, proxied bool) time.Duration {
		seq++
		var body io.Reader
		if bc.body != nil {
			body = bytes.NewReader(bc.body(t.runID, seq))
		}
		req, _ := http.NewRequest(bc.method, t.api(proxied)+bc.path, body)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if proxied && t.token != "" {
			req.Header.Set("Authorization", "Bearer "+t.token)
		}
		start := time.Now()
		resp, err := benchHTTP.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s %s: %d", bc.method, req.URL, resp.StatusCode)
		}
		return took
	}
	for range 3 { // warm every path, connection and cache
		for _, t := range []benchTarget{benchOff, benchOn} {
			do(t, false)
			do(t, true)
		}
	}
	n := b.N * benchQuadsPerOp
	if name == "log_batch-1000" {
		n = b.N * benchQuadsPerOp / benchBatchShare
	}
	direct := make([]time.Duration, 0, n)
	addedOff := make([]time.Duration, 0, n)
	addedOn := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := range n {
		// Four ways, each pair (direct and proxied to one server) side by
		// side. A Python server answers the second of two calls in a row
		// faster than the first (its process is awake, its caches warm),
		// about a millisecond on a busy machine, so each side goes first
		// in every other quad and the two orders are averaged (roundsP50).
		var d [4]time.Duration // direct off, proxied off, direct on, proxied on
		for _, w := range benchOrders[i%len(benchOrders)] {
			t := benchOff
			if w >= 2 {
				t = benchOn
			}
			d[w] = do(t, w%2 == 1)
		}
		direct = append(direct, d[0])
		addedOff = append(addedOff, d[1]-d[0])
		addedOn = append(addedOn, d[3]-d[2])
	}
	b.StopTimer()
	row := benchRow{call: name, direct: p50(direct), target: "-"}
	row.off, row.offMin, row.offMax = roundsP50(addedOff)
	row.on, row.onMin, row.onMax = roundsP50(addedOn)
	if name == "GET" || name == "POST" {
		row.target = fmt.Sprintf("auth-on added < %d µs", benchAddedTarget.Microseconds())
	}
	b.ReportMetric(float64(row.direct.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(row.off.Microseconds()), "off-added-p50-µs")
	b.ReportMetric(float64(row.on.Microseconds()), "on-added-p50-µs")
	b.ReportMetric(float64(row.onMax.Microseconds()), "on-added-max-round-µs")
	return row
}

// p50 is the median of ds.
func p50(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchOrders are the orders of a quad (0 direct off, 1 proxied off, 2
// direct on, 3 proxied on): in even quads the direct call of each pair
// goes first, in odd ones the proxied call, and the panels swap places.
var benchOrders = [][4]int{{0, 1, 2, 3}, {1, 0, 3, 2}, {2, 3, 0, 1}, {3, 2, 1, 0}}

// roundsP50 cuts the paired differences into benchRounds consecutive
// rounds; a round's figure is the mean of the p50 of its direct-first
// pairs (even quads) and the p50 of its proxied-first pairs (odd quads),
// so the advantage of going second cancels out. It returns the median of
// the rounds' figures and the lowest and highest of them: the spread says
// how far one figure can be trusted on this machine.
func roundsP50(samples []time.Duration) (mid, lo, hi time.Duration) {
	rounds := max(1, min(benchRounds, len(samples)/2))
	var ps []time.Duration
	for r := range rounds {
		from, to := r*len(samples)/rounds, (r+1)*len(samples)/rounds
		var first, second []time.Duration
		for i := from; i < to; i++ {
			if i%2 == 0 {
				first = append(first, samples[i])
			} else {
				second = append(second, samples[i])
			}
		}
		if len(second) == 0 {
			second = first
		}
		ps = append(ps, (p50(first)+p50(second))/2)
	}
	slices.Sort(ps)
	return ps[len(ps)/2], ps[0], ps[len(ps)-1]
}

// stockWorkload is what a training script does with the stock MLflow
// client: an experiment, a run with params, tags, metrics one by one and
// in a batch, then reading it back and searching. It runs against each
// target in turn, every round, and prints one line per round with the
// seconds each target took (imports and the first connection excluded).
const stockWorkload = `
import json, os, sys, time
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

targets = json.loads(os.environ["BENCH_TARGETS"])
rounds = int(os.environ["BENCH_ROUNDS"])

def workload(uri, token, tag):
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    else:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    c = MlflowClient(tracking_uri=uri)
    start = time.perf_counter()
    exp = c.create_experiment("stock-%s-%d" % (tag, time.time_ns()))
    run = c.create_run(exp).info.run_id
    for i in range(10):
        c.log_param(run, "p%d" % i, i)
    for i in range(5):
        c.set_tag(run, "t%d" % i, "v")
    for i in range(40):
        c.log_metric(run, "loss", 1.0 / (i + 1), step=i)
    c.log_batch(run, metrics=[Metric("acc", j / 100, 1700000000000, j) for j in range(100)])
    c.set_terminated(run)
    c.get_run(run)
    c.get_metric_history(run, "loss")
    c.search_runs([exp], max_results=10)
    return time.perf_counter() - start

for t in targets:  # warm: connections, the server's caches
    workload(t["uri"], t["token"], "warm")
for r in range(rounds):
    out = []
    for k in range(len(targets)):
        i = (r + k) % len(targets)
        out.append((i, workload(targets[i]["uri"], targets[i]["token"], "r%d" % r)))
    out.sort()
    print("ROUND " + " ".join("%.6f" % s for _, s in out), flush=True)
`

// benchStockClient runs stockWorkload b.N rounds against the four
// targets and reports, per panel, the median over rounds of proxied
// time / direct time (and its min and max).
func benchStockClient(b *testing.B) benchRow {
	type target struct {
		URI   string `json:"uri"`
		Token string `json:"token"`
	}
	targets := []target{
		{benchOff.direct, ""}, {benchOff.proxied, ""},
		{benchOn.direct, ""}, {benchOn.proxied, benchOn.token},
	}
	raw, _ := json.Marshal(targets)
	b.ResetTimer()
	out := python(b, stockWorkload, "BENCH_TARGETS="+string(raw), fmt.Sprintf("BENCH_ROUNDS=%d", b.N))
	b.StopTimer()
	var off, on, direct []float64
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, "ROUND ")
		if !ok {
			continue
		}
		var s [4]float64
		if _, err := fmt.Sscanf(rest, "%g %g %g %g", &s[0], &s[1], &s[2], &s[3]); err != nil {
			b.Fatalf("stock client output %q: %v", line, err)
		}
		direct = append(direct, s[0])
		off = append(off, s[1]/s[0])
		on = append(on, s[3]/s[2])
	}
	if len(off) != b.N {
		b.Fatalf("the stock client printed %d rounds, want %d:\n%s", len(off), b.N, out)
	}
	mid := func(xs []float64) (float64, [2]float64) {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2], [2]float64{s[0], s[len(s)-1]}
	}
	row := benchRow{call: "stock client workload (ratio)", stock: true, target: "close to 1.00x"}
	row.ratioOff, row.ratioOffR = mid(off)
	row.ratioOn, row.ratioOnR = mid(on)
	d, _ := mid(direct)
	row.direct = time.Duration(d * float64(time.Second))
	b.ReportMetric(row.ratioOff, "off-proxied/direct")
	b.ReportMetric(row.ratioOn, "on-proxied/direct")
	return row
}

// printBenchTable prints the figures of the last (largest) run of each
// sub-benchmark as a table, to stdout beside the benchmark lines.
func printBenchTable(rows []benchRow) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nProxy overhead (p50 of paired differences per round: median [min..max] of %d rounds)\n", benchRounds)
	fmt.Fprintf(&sb, "%-32s %12s %30s %30s  %s\n", "call", "direct", "auth-off added", "auth-on added", "target")
	us := func(d time.Duration) string { return fmt.Sprintf("%d", d.Microseconds()) }
	for _, r := range rows {
		if r.call == "" {
			continue // a sub-benchmark that failed
		}
		if r.stock {
			fmt.Fprintf(&sb, "%-32s %10.2f s %30s %30s  %s\n", r.call, r.direct.Seconds(),
				fmt.Sprintf("%.3fx [%.3f..%.3f]", r.ratioOff, r.ratioOffR[0], r.ratioOffR[1]),
				fmt.Sprintf("%.3fx [%.3f..%.3f]", r.ratioOn, r.ratioOnR[0], r.ratioOnR[1]), r.target)
			continue
		}
		fmt.Fprintf(&sb, "%-32s %9s µs %30s %30s  %s\n", r.call, us(r.direct),
			fmt.Sprintf("%s µs [%s..%s]", us(r.off), us(r.offMin), us(r.offMax)),
			fmt.Sprintf("%s µs [%s..%s]", us(r.on), us(r.onMin), us(r.onMax)), r.target)
	}
	fmt.Fprint(os.Stdout, sb.String())
}
