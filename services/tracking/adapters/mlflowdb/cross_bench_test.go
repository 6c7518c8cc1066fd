package mlflowdb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/app"
	"github.com/mlpanel/mlpanel/services/tracking/internal/benchdata"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

func copyFile(b *testing.B, from, to string) {
	data, err := os.ReadFile(from)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		b.Fatal(err)
	}
}

// noWake is the projects service of the benchmark's sleeping projects:
// a search that tried to wake one would fail the benchmark.
type noWake struct {
	b        *testing.B
	projects []app.Project
}

func (n *noWake) Visible(context.Context, events.Request) ([]app.Project, error) {
	return n.projects, nil
}
func (n *noWake) Get(context.Context, string) (app.Project, error) {
	n.b.Fatal("the search asked for a project's server")
	return app.Project{}, nil
}
func (n *noWake) Wake(context.Context, string) (app.Project, error) {
	n.b.Fatal("the search woke a sleeping project")
	return app.Project{}, nil
}
func (*noWake) Used(string) {}

// BenchmarkSearchAcrossProjects times GET /search/runs's use case over 50
// sleeping projects of 2,000 runs each (100,000 runs, data written in
// MLflow's schema as BenchmarkTrackingReads writes it) against MLflow's
// own runs/search with the same filter and order on one project of
// 100,000 runs, alternating, and prints the ratio and this process's
// memory (the service's use case runs in it). `make bench` runs it.
func BenchmarkSearchAcrossProjects(b *testing.B) {
	const projects, perProject, bigRuns = 50, 2000, 100000
	root := repoRoot(b)
	venv := filepath.Join(root, ".venv", "bin")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	home, err := os.MkdirTemp("", "mlpanel-search-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(home)

	t0 := time.Now()
	tmpl := filepath.Join(home, "template")
	fillBig(b, venv, tmpl, 0, 0) // MLflow's schema at the pinned revision, experiment 1
	cat := &noWake{b: b}
	for i := 0; i < projects; i++ {
		dir := filepath.Join(home, fmt.Sprintf("p%02d", i))
		copyFile(b, DBPath(tmpl), DBPath(dir))
		benchdata.AddRuns(b, DBPath(dir), perProject, int64(i+1), benchdata.Base+int64(i+1)*7) // projects differ
		cat.projects = append(cat.projects, app.Project{ID: fmt.Sprint(i + 1), Name: fmt.Sprintf("p%02d", i), Status: "sleeping", Path: dir})
	}
	b.Logf("%d projects x %d runs written in %s", projects, perProject, time.Since(t0).Round(time.Millisecond))
	big := filepath.Join(home, "big")
	t0 = time.Now()
	fillBig(b, venv, big, bigRuns, 0)
	b.Logf("%d runs written in %s", bigRuns, time.Since(t0).Round(time.Millisecond))
	url, stop := startMLflow(b, venv, big)
	restart := func() {
		stop()
		url, stop = startMLflow(b, venv, big)
	}
	defer func() { stop() }()

	rd := New(log)
	defer rd.Close()
	hc := &http.Client{Timeout: time.Minute}
	svc := app.New(cat, func(u string) *mc.Client { return mc.New(u, hc) }, log, func() int64 { return time.Now().UnixMilli() })
	svc.UseDirectReads(rd)
	search := app.NewSearch(svc, cat, rd)
	ctx := context.Background()
	before := rssMB()

	const filter = "metrics.accuracy > 0.9 and params.lr = '0.01'"
	t0 = time.Now()
	first, err := search.SearchRuns(ctx, events.Request{}, app.SearchQuery{Filter: filter, OrderBy: "metrics.accuracy DESC"}, events.ListParams{End: 10})
	if err != nil || len(first.Items) != 10 || first.Total < 1000 {
		b.Fatalf("first search: %v (%d runs, total %d)", err, len(first.Items), first.Total)
	}
	cold := time.Since(t0)
	t0 = time.Now()
	if _, err := search.SearchRuns(ctx, events.Request{}, app.SearchQuery{Filter: filter, OrderBy: "metrics.accuracy DESC"}, events.ListParams{End: 10}); err != nil {
		b.Fatal(err)
	}
	warm := time.Since(t0)
	cases := []benchCall{
		{fmt.Sprintf("filter + order_by, first page: %d projects x %d runs vs MLflow on %d", projects, perProject, bigRuns),
			marshalled(func() (any, error) {
				return search.SearchRuns(ctx, events.Request{}, app.SearchQuery{Filter: filter, OrderBy: "metrics.accuracy DESC"}, events.ListParams{End: 10})
			}),
			mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 10,
				"filter": filter, "order_by": []string{"metrics.accuracy DESC"}})},
		{"no filter, default order, first page",
			marshalled(func() (any, error) {
				return search.SearchRuns(ctx, events.Request{}, app.SearchQuery{}, events.ListParams{End: 10})
			}),
			mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 10})},
		{"leaderboard group_by=project (best accuracy of each)",
			marshalled(func() (any, error) {
				return search.SearchRuns(ctx, events.Request{}, app.SearchQuery{OrderBy: "metrics.accuracy DESC", GroupBy: "project"}, events.ListParams{End: 10})
			}),
			mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 1,
				"order_by": []string{"metrics.accuracy DESC"}})},
	}
	var rows []string
	for _, c := range cases {
		m, f, to := median(b, c, 7, restart)
		ratio := fmt.Sprintf("%5.2fx", m/f)
		if to {
			ratio = "< " + ratio
		}
		rows = append(rows, fmt.Sprintf("| %-72s | %9.1f | %9.1f | %8s |", c.name, m, f, ratio))
	}
	fmt.Printf("\n| %-72s | %9s | %9s | %8s |\n|%s|%s|%s|%s|\n", "GET /search/runs (median of alternating rounds)", "mlpanel ms", "MLflow ms", "ratio",
		strings.Repeat("-", 74), strings.Repeat("-", 11), strings.Repeat("-", 11), strings.Repeat("-", 10))
	for _, r := range rows {
		fmt.Println(r)
	}
	// The rounds above alternate with MLflow's answer; where that takes
	// longer than the reader's idle timeout, each of our rounds starts
	// with the databases closed again (cold).
	fmt.Printf("\nfiltered first page with every database closed (opening %d): %.1f ms; at once again (open): %.1f ms\n", projects,
		float64(cold.Microseconds())/1000, float64(warm.Microseconds())/1000)
	after := rssMB()
	// Idle connections close after the reader's idle timeout: the memory
	// a burst of searches took goes back.
	time.Sleep(defaultIdleTimeout + 3*time.Second)
	fmt.Printf("search service (this process) memory: before the searches %s; after %s; %s later %s\n", before, after, defaultIdleTimeout+3*time.Second, rssMB())
}
