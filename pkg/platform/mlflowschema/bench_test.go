package mlflowschema

import (
	"context"
	"testing"
	"time"
)

// BenchmarkRevision: what GET /projects/{id} pays for the schema revision,
// opening the database every call (the old way, the baseline) against the
// cache keyed on the file's state. It reports the ratio measured in this
// run.
func BenchmarkRevision(b *testing.B) {
	path, _ := newDB(b, Head)
	ctx := context.Background()
	timeIt := func(fn func() error) time.Duration {
		start := time.Now()
		for range b.N {
			if err := fn(); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start) / time.Duration(b.N)
	}
	var c Cache
	open := timeIt(func() error { _, err := ReadFile(ctx, path); return err })
	cached := timeIt(func() error { _, err := c.Revision(ctx, path); return err })
	b.ReportMetric(float64(open.Nanoseconds()), "ns/open")
	b.ReportMetric(float64(cached.Nanoseconds()), "ns/cached")
	b.ReportMetric(float64(open)/float64(cached), "x-faster")
}
