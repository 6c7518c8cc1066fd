package mlflowdb

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	mrand "math/rand"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/pgtest"
	"github.com/mlpanel/mlpanel/services/tracking/app"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// fillBigPG is fillBig on PostgreSQL: MLflow's own code makes the schema
// and the experiments in a new database of the server at pg, COPY writes
// the same 100,000 runs, and ANALYZE gives the planner the statistics
// autovacuum would. It returns the database's name.
func fillBigPG(b testing.TB, venv, pg string, runs int) string {
	ctx := context.Background()
	const name = "bench"
	admin, err := sql.Open("pgx", pg)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		b.Fatal(err)
	}
	u, _ := neturl.Parse(pg)
	u.Path = "/" + name
	script := `import sys
from mlflow.tracking import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
c.create_experiment("big")
for i in range(20):
    c.create_experiment("empty-%d" % i)
`
	if out, err := exec.Command(filepath.Join(venv, "python"), "-c", script, mlflowURI(u)).CombinedOutput(); err != nil {
		b.Fatalf("creating the database: %v\n%s", err, out)
	}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	// The rows are made as COPY sends them, not held: the benchmark
	// prints this process's memory, which should be the reads'. Run i is
	// the same in every table (its own seeded generator).
	type benchRun struct {
		uid, name string
		start     int64
		acc, loss float64
		lr        string
	}
	lrs := []string{"0.01", "0.1", "0.001"}
	base := int64(1_700_000_000_000)
	run := func(i int) benchRun {
		r := mrand.New(mrand.NewSource(int64(i) + 1))
		var id [16]byte
		_, _ = r.Read(id[:])
		start := base + int64(i)*1000
		return benchRun{uid: hex.EncodeToString(id[:]), name: fmt.Sprintf("run-%d", i), start: start, acc: r.Float64(), loss: r.Float64(), lr: lrs[r.Intn(3)]}
	}
	for _, t := range []struct {
		table string
		cols  []string
		rows  func(b benchRun) [][]any
	}{
		{"runs", []string{"run_uuid", "name", "source_type", "source_name", "entry_point_name", "user_id", "status", "start_time", "end_time", "source_version", "lifecycle_stage", "artifact_uri", "experiment_id"},
			func(b benchRun) [][]any {
				return [][]any{{b.uid, b.name, "UNKNOWN", "", "", "bench", "FINISHED", b.start, b.start + 500, "", "active", "mlflow-artifacts:/1/" + b.uid + "/artifacts", int32(1)}}
			}},
		{"latest_metrics", []string{"key", "value", "timestamp", "step", "is_nan", "run_uuid"}, func(b benchRun) [][]any {
			return [][]any{{"accuracy", b.acc, b.start + 400, int64(0), false, b.uid}, {"loss", b.loss, b.start + 400, int64(0), false, b.uid}}
		}},
		{"metrics", []string{"key", "value", "timestamp", "step", "is_nan", "run_uuid"}, func(b benchRun) [][]any {
			return [][]any{{"accuracy", b.acc, b.start + 400, int64(0), false, b.uid}, {"loss", b.loss, b.start + 400, int64(0), false, b.uid}}
		}},
		{"params", []string{"key", "value", "run_uuid"}, func(b benchRun) [][]any { return [][]any{{"lr", b.lr, b.uid}} }},
		{"tags", []string{"key", "value", "run_uuid"}, func(b benchRun) [][]any {
			return [][]any{{"mlflow.runName", b.name, b.uid}, {"mlflow.user", "bench", b.uid}}
		}},
	} {
		i := 0
		var pending [][]any
		next := func() ([]any, error) {
			for len(pending) == 0 {
				if i == runs {
					return nil, nil
				}
				pending = t.rows(run(i))
				i++
			}
			row := pending[0]
			pending = pending[1:]
			return row, nil
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{t.table}, t.cols, &copySource{next: next}); err != nil {
			b.Fatalf("COPY %s: %v", t.table, err)
		}
	}
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return name
}

// copySource feeds COPY one row at a time.
type copySource struct {
	next func() ([]any, error)
	row  []any
	err  error
}

func (c *copySource) Next() bool {
	c.row, c.err = c.next()
	return c.row != nil && c.err == nil
}
func (c *copySource) Values() ([]any, error) { return c.row, nil }
func (c *copySource) Err() error             { return c.err }

// mlflowURI is u as MLflow's backend store: with the psycopg2 driver the
// virtualenv pins.
func mlflowURI(u *neturl.URL) string {
	v := *u
	v.Scheme = "postgresql+psycopg2"
	return v.String()
}

// benchPostgreSQL times the /runs pages and the experiment get at
// 100,000 runs of a project whose MLflow keeps them in PostgreSQL,
// against that MLflow server's own REST calls.
func benchPostgreSQL(b *testing.B, venv string, log *slog.Logger, hc *http.Client, row func(string, float64, float64, bool)) {
	const size = 100000
	pg := pgtest.Start(b)
	t0 := time.Now()
	name := fillBigPG(b, venv, pg, size)
	b.Logf("%d runs written to PostgreSQL in %s", size, time.Since(t0).Round(time.Millisecond))
	dir, err := os.MkdirTemp("", "mlpanel-bench-pg-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	u, _ := neturl.Parse(pg)
	u.Path = "/" + name
	url, stop := startMLflowOn(b, venv, dir, mlflowURI(u))
	restart := func() {
		stop()
		url, stop = startMLflowOn(b, venv, dir, mlflowURI(u))
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
