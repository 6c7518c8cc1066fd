package mlflowdb

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	neturl "net/url"
	"os"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/pgtest"
	"github.com/mlpanel/mlpanel/services/tracking/app"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	"github.com/mlpanel/mlpanel/services/tracking/internal/benchdata"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// benchPostgreSQL times the /runs pages and the experiment get at
// 100,000 runs of a project whose MLflow keeps them in PostgreSQL,
// against that MLflow server's own REST calls.
func benchPostgreSQL(b *testing.B, venv string, log *slog.Logger, hc *http.Client, row func(string, float64, float64, bool)) {
	const size = 100000
	pg := pgtest.Start(b)
	t0 := time.Now()
	name := benchdata.NewPostgreSQL(b, venv, pg, size)
	b.Logf("%d runs written to PostgreSQL in %s", size, time.Since(t0).Round(time.Millisecond))
	dir, err := os.MkdirTemp("", "mlpanel-bench-pg-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	u, _ := neturl.Parse(pg)
	u.Path = "/" + name
	url, stop := startMLflowOn(b, venv, dir, benchdata.MLflowURI(u))
	restart := func() {
		stop()
		url, stop = startMLflowOn(b, venv, dir, benchdata.MLflowURI(u))
	}
	rd := New(log)
	rd.PostgresURL = pg
	defer rd.Close()
	svc := app.New(&urlProjects{p: app.Project{ID: "1", Name: "bench-pg", Status: app.StatusRunning, Path: dir, Backend: "postgresql", Database: name}, url: &url},
		func(u string) *mc.Client { return mc.New(u, hc) }, log, func() int64 { return time.Now().UnixMilli() })
	svc.UseDirectReads(rd)
	ctx := context.Background()
	listRuns := func(q app.RunQuery, lp events.ListParams) func() error {
		q.Project = "1"
		return marshalled(func() (events.List[domain.Run], error) { return svc.ListRuns(ctx, q, lp) })
	}
	if one, err := svc.ListRuns(ctx, app.RunQuery{Project: "1", ExperimentID: "1"}, events.ListParams{End: 1}); err != nil || one.Total != size {
		b.Fatalf("first run on PostgreSQL: %v (total %d)", err, one.Total)
	}
	filter := "metrics.accuracy > 0.9 and params.lr = '0.01'"
	for _, c := range []benchCall{
		{fmt.Sprintf("PostgreSQL: GET /runs first page (%d runs)", size),
			listRuns(app.RunQuery{ExperimentID: "1"}, events.ListParams{End: 10}),
			mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 10})},
		{"PostgreSQL: GET /runs?_start=50000&_end=50010 (deep page)",
			listRuns(app.RunQuery{ExperimentID: "1"}, events.ListParams{Start: 50000, End: 50010}),
			mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 10, "page_token": pageToken(50000)})},
		{"PostgreSQL: GET /runs filter=" + filter,
			listRuns(app.RunQuery{ExperimentID: "1", Filter: filter}, events.ListParams{End: 10}),
			mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 10, "filter": filter})},
		{"PostgreSQL: GET /runs order_by=metrics.accuracy DESC",
			listRuns(app.RunQuery{ExperimentID: "1", OrderBy: "metrics.accuracy DESC"}, events.ListParams{End: 10}),
			mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 10, "order_by": []string{"metrics.accuracy DESC"}})},
		{"PostgreSQL: GET /experiments/1 (run_count, time rule)",
			marshalled(func() (any, error) { return svc.GetExperiment(ctx, "1", "1") }),
			mlflowCall(&url, http.MethodGet, "experiments/get?experiment_id=1", nil)},
	} {
		m, f, to := median(b, c, 5, restart)
		row(c.name, m, f, to)
	}
	stop()
}
