package e2e

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkRollover measures what a rollover costs the callers of a
// following deployment: 8 clients predict steadily; the latency while the
// alias moves (new server starting beside the old, the switch, the drain)
// is compared with the latency of the same load just before, in the same
// run. Each iteration is one rollover (at most 3: each takes the new
// version's start time). Any failed predict fails the benchmark.
func BenchmarkRollover(b *testing.B) {
	f, v := followSetup(b)
	p := f.project
	followValue[v.one], followValue[v.two] = "1", "2"
	setAlias(b, p, "bench", v.one)
	r := call(b, "POST", "/deployments", map[string]any{"project_id": p.ID, "model_id": followModel, "version": "@bench"})
	expect(b, r, 202)
	var d deployment
	r.JSON(b, &d)
	defer deleteDeploymentQuietly(d.ID)
	waitFollow(b, d.ID, "running", 4*time.Minute, func(d followDeployment) bool { return d.Status == "running" })

	load := startLoad(d.ID, 8)
	defer load.end()
	time.Sleep(2 * time.Second) // warm
	rounds := min(b.N, 3)
	var base, during []time.Duration
	var switchTook time.Duration
	versions := []string{v.two, v.one}
	b.ResetTimer()
	for i := range rounds {
		n0 := load.count()
		time.Sleep(5 * time.Second)
		n1 := load.count()
		to := versions[i%2]
		start := time.Now()
		setAlias(b, p, "bench", to)
		waitFollow(b, d.ID, "rolled over", 4*time.Minute, func(d followDeployment) bool {
			n := len(d.Rollovers)
			return d.Version == to && n > i && d.Rollovers[n-1].Result == "succeeded"
		})
		switchTook += time.Since(start)
		time.Sleep(followDrain + 2*time.Second) // the old server drains and stops
		n2 := load.count()
		base = append(base, load.window(n0, n1)...)
		during = append(during, load.window(n1, n2)...)
	}
	b.StopTimer()
	if _, _, fails := load.snapshot(); len(fails) > 0 {
		b.Fatalf("%d predicts failed during rollovers; first: %s", len(fails), fails[0])
	}
	q := func(ds []time.Duration, p float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[int(float64(len(s)-1)*p)]
	}
	b.ReportMetric(float64(q(base, 0.5).Microseconds()), "steady-p50-µs")
	b.ReportMetric(float64(q(during, 0.5))/float64(q(base, 0.5)), "rollover/steady-p50")
	b.ReportMetric(float64(q(during, 0.99))/float64(q(base, 0.99)), "rollover/steady-p99")
	b.ReportMetric(switchTook.Seconds()/float64(rounds), "s-alias-to-switch")
	b.ReportMetric(0, "failed-predicts")
}

func (l *predictLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.took)
}

func (l *predictLoad) window(from, to int) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.took[from:to])
}
