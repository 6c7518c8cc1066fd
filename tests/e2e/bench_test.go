package e2e

import (
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

var (
	benchOnce    sync.Once
	benchProject project
)

// BenchmarkProxyOverhead measures MLflow calls through the gateway's proxy
// against the same calls straight to the tracking server, in the same run,
// and reports the ratio: the price of the single entry point.
//
//	make bench
func BenchmarkProxyOverhead(b *testing.B) {
	benchOnce.Do(func() { benchProject = runningProject(b, "bench") })
	p := benchProject
	const api = "/api/2.0/mlflow/experiments/search?max_results=10"
	direct := p.MlflowURI + api
	proxied := panel.URL + "/projects/" + p.Name + "/mlflow" + api

	get := func(b *testing.B, url string) {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %d", url, resp.StatusCode)
		}
	}
	timeIt := func(b *testing.B, url string, n int) time.Duration {
		start := time.Now()
		for i := 0; i < n; i++ {
			get(b, url)
		}
		return time.Since(start) / time.Duration(n)
	}
	get(b, direct) // warm both paths
	get(b, proxied)
	b.ResetTimer()
	var dSum, pSum time.Duration
	for i := 0; i < b.N; i++ {
		// Interleave so drift in the machine's load hits both sides alike.
		dSum += timeIt(b, direct, 5)
		pSum += timeIt(b, proxied, 5)
	}
	b.ReportMetric(float64(dSum.Microseconds())/float64(b.N), "direct-µs/call")
	b.ReportMetric(float64(pSum.Microseconds())/float64(b.N), "proxied-µs/call")
	b.ReportMetric(float64(pSum)/float64(dSum), "proxied/direct")
}
