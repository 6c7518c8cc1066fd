package mlflowdb

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/app"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	"github.com/mlpanel/mlpanel/services/tracking/internal/benchdata"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// benchProjects is the projects service's answer for the one project of a
// benchmark.
type benchProjects struct{ p app.Project }

func (b benchProjects) Get(context.Context, string) (app.Project, error) { return b.p, nil }
func (b benchProjects) Wake(ctx context.Context, ref string) (app.Project, error) {
	return b.Get(ctx, ref)
}
func (benchProjects) Used(string) {}

// urlProjects answers with the current address of a server the benchmark
// may restart.
type urlProjects struct {
	p   app.Project
	url *string
}

func (u *urlProjects) Get(context.Context, string) (app.Project, error) {
	p := u.p
	p.InternalURL = *u.url
	return p, nil
}

func (u *urlProjects) Wake(ctx context.Context, ref string) (app.Project, error) {
	return u.Get(ctx, ref)
}
func (*urlProjects) Used(string) {}

// fillBig creates dir's database with MLflow's own code (schema at the
// pinned revision, experiment 1 and emptyExperiments more) and writes
// runs runs to experiment 1 in MLflow's schema with SQL.
func fillBig(b *testing.B, venv, dir string, runs, emptyExperiments int) {
	benchdata.NewSQLite(b, venv, DBPath(dir), emptyExperiments)
	benchdata.AddRuns(b, DBPath(dir), runs, 1, benchdata.Base)
}

// benchModels and benchVersions are the registry of the 100k project.
const benchModels, benchVersions = 1000, 5

type benchCall struct {
	name   string
	mlpan  func() error
	mlflow func() error
}

// mlflowTimeout bounds one MLflow call of the benchmark: at 100,000 runs
// some of MLflow's own calls take minutes.
const mlflowTimeout = 60 * time.Second

// median times up to n alternating rounds of both calls (one round when a
// call takes seconds). An MLflow call that times out counts as the
// timeout and restart starts a fresh server, so the next call does not
// queue behind the abandoned one. before runs untimed ahead of each round.
func median(b *testing.B, c benchCall, n int, restart func(), before ...func()) (float64, float64, bool) {
	var x, y []float64
	timedOut := false
	for i := 0; i < n; i++ {
		for _, f := range before {
			f()
		}
		t0 := time.Now()
		if err := c.mlpan(); err != nil {
			b.Fatalf("%s through mlpanel: %v", c.name, err)
		}
		x = append(x, float64(time.Since(t0).Microseconds())/1000)
		t0 = time.Now()
		if err := c.mlflow(); err != nil {
			if !errors.Is(err, context.DeadlineExceeded) && !os.IsTimeout(err) {
				b.Fatalf("%s through MLflow: %v", c.name, err)
			}
			timedOut = true
			restart()
		}
		y = append(y, float64(time.Since(t0).Microseconds())/1000)
		if timedOut || x[len(x)-1] > 3000 || y[len(y)-1] > 3000 {
			break
		}
	}
	sort.Float64s(x)
	sort.Float64s(y)
	return x[len(x)/2], y[len(y)/2], timedOut
}

func mlflowCall(base *string, method, path string, body any) func() error {
	return func() error {
		url := *base
		ctx, cancel := context.WithTimeout(context.Background(), mlflowTimeout)
		defer cancel()
		var req *http.Request
		var err error
		if method == http.MethodPost {
			data, _ := json.Marshal(body)
			req, err = http.NewRequestWithContext(ctx, method, url+"/api/2.0/mlflow/"+path, bytes.NewReader(data))
			req.Header.Set("Content-Type", "application/json")
		} else {
			req, err = http.NewRequestWithContext(ctx, method, url+"/api/2.0/mlflow/"+path, nil)
		}
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
}

// marshalled runs a use case and encodes its answer, as the service does
// before it replies.
func marshalled[T any](f func() (T, error)) func() error {
	return func() error {
		v, err := f()
		if err != nil {
			return err
		}
		_, err = json.Marshal(v)
		return err
	}
}

func pageToken(offset int) string {
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf(`{"offset": %d}`, offset)))
}

func rssMB() string {
	data, _ := os.ReadFile("/proc/self/status")
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "VmHWM") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(out, ", ")
}

// BenchmarkTrackingReads builds projects of 1k, 10k and 100k runs, starts a
// real `mlflow server` on each and times the tracking service's use cases
// (the direct reads wired as service.go wires them, replies JSON-encoded)
// against MLflow's own REST call for the same page, alternating, and
// prints a table. `make bench` runs it; `make test` does not (-run ^$).
func BenchmarkTrackingReads(b *testing.B) {
	root := repoRoot(b)
	venv := filepath.Join(root, ".venv", "bin")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hc := &http.Client{Timeout: time.Minute}
	var rows []string
	row := func(name string, m, f float64, timedOut bool) {
		if timedOut {
			rows = append(rows, fmt.Sprintf("| %-58s | %9.1f | > %7.0f | < %.2fx |", name, m, f, m/f))
			return
		}
		rows = append(rows, fmt.Sprintf("| %-58s | %9.1f | %9.1f | %5.2fx |", name, m, f, m/f))
	}
	for _, size := range []int{1000, 10000, 100000} {
		dir, err := os.MkdirTemp("", "mlpanel-bench-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
		t0 := time.Now()
		fillBig(b, venv, dir, size, 20)
		if size == 100000 {
			benchdata.Registry(b, DBPath(dir), benchModels, benchVersions)
		}
		b.Logf("%d runs written in %s", size, time.Since(t0).Round(time.Millisecond))
		url, stop := startMLflow(b, venv, dir)
		restart := func() {
			stop()
			url, stop = startMLflow(b, venv, dir)
		}
		rd := New(log)
		svc := app.New(&urlProjects{p: app.Project{ID: "1", Name: "bench", Status: app.StatusRunning, Path: dir}, url: &url},
			func(u string) *mc.Client { return mc.New(u, hc) }, log, func() int64 { return time.Now().UnixMilli() })
		svc.UseDirectReads(rd)
		ctx := context.Background()
		listRuns := func(q app.RunQuery, lp events.ListParams) func() error {
			q.Project = "1"
			return marshalled(func() (events.List[domain.Run], error) { return svc.ListRuns(ctx, q, lp) })
		}
		n := 9
		if size == 100000 {
			n = 5
		}
		first := benchCall{fmt.Sprintf("GET /runs first page (%d runs)", size),
			listRuns(app.RunQuery{ExperimentID: "1"}, events.ListParams{End: 10}),
			mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 10})}
		m, f, to := median(b, first, n, restart)
		row(first.name, m, f, to)
		// The total of an unchanged database is remembered; right after
		// a commit (a training run logging a metric) it is counted again.
		written := first
		written.name = fmt.Sprintf("GET /runs first page, after a write (%d runs)", size)
		m, f, to = median(b, written, n, restart, func() { benchdata.Touch(b, DBPath(dir)) })
		row(written.name, m, f, to)
		if size != 100000 {
			rd.Close()
			stop()
			continue
		}
		var one events.List[domain.Run]
		one, err = svc.ListRuns(ctx, app.RunQuery{Project: "1", ExperimentID: "1"}, events.ListParams{End: 1})
		if err != nil || len(one.Items) != 1 || one.Total != size {
			b.Fatalf("first run: %v (total %d)", err, one.Total)
		}
		runID := one.Items[0].ID
		if ms, err := svc.ListRegisteredModels(ctx, "1", "", events.ListParams{End: 1}); err != nil || ms.Total != benchModels {
			b.Fatalf("registered models: %v (total %d)", err, ms.Total)
		}
		if vs, err := svc.ListModelVersions(ctx, "1", "", events.ListParams{End: 1}); err != nil || vs.Total != benchModels*benchVersions {
			b.Fatalf("model versions: %v (total %d)", err, vs.Total)
		}
		calls := []benchCall{
			{"GET /runs?_start=50000&_end=50010 (deep page)",
				listRuns(app.RunQuery{ExperimentID: "1"}, events.ListParams{Start: 50000, End: 50010}),
				mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 10, "page_token": pageToken(50000)})},
			{"GET /runs filter=metrics.accuracy > 0.9 and params.lr = '0.01'",
				listRuns(app.RunQuery{ExperimentID: "1", Filter: "metrics.accuracy > 0.9 and params.lr = '0.01'"}, events.ListParams{End: 10}),
				mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 10, "filter": "metrics.accuracy > 0.9 and params.lr = '0.01'"})},
			{"GET /runs order_by=metrics.accuracy DESC",
				listRuns(app.RunQuery{ExperimentID: "1", OrderBy: "metrics.accuracy DESC"}, events.ListParams{End: 10}),
				mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 10, "order_by": []string{"metrics.accuracy DESC"}})},
			{"GET /runs (every experiment, first page)",
				listRuns(app.RunQuery{}, events.ListParams{End: 10}),
				mlflowCall(&url, http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "max_results": 10})},
			{"GET /experiments (run_count, time rule)",
				marshalled(func() (any, error) {
					return svc.ListExperiments(ctx, app.ExperimentQuery{Project: "1"}, events.ListParams{End: 10})
				}),
				mlflowCall(&url, http.MethodGet, "experiments/search?max_results=10", nil)},
			{"GET /experiments/1 (100,000 runs: run_count, time rule)",
				marshalled(func() (any, error) { return svc.GetExperiment(ctx, "1", "1") }),
				mlflowCall(&url, http.MethodGet, "experiments/get?experiment_id=1", nil)},
			{"GET /runs/{id}",
				marshalled(func() (any, error) { return svc.GetRun(ctx, "1", runID) }),
				mlflowCall(&url, http.MethodGet, "runs/get?run_id="+runID, nil)},
			{"GET /runs/{id}/metrics/accuracy",
				marshalled(func() (any, error) {
					return svc.MetricHistory(ctx, "1", runID, "accuracy", events.ListParams{})
				}),
				mlflowCall(&url, http.MethodGet, "metrics/get-history?run_id="+runID+"&metric_key=accuracy", nil)},
			{fmt.Sprintf("GET /registered-models first page (%d models)", benchModels),
				marshalled(func() (any, error) { return svc.ListRegisteredModels(ctx, "1", "", events.ListParams{End: 10}) }),
				mlflowCall(&url, http.MethodGet, "registered-models/search?max_results=10", nil)},
			{"GET /registered-models filter=name LIKE 'model-009%'",
				marshalled(func() (any, error) {
					return svc.ListRegisteredModels(ctx, "1", "name LIKE 'model-009%'", events.ListParams{End: 10})
				}),
				mlflowCall(&url, http.MethodGet, "registered-models/search?max_results=10&filter="+neturl.QueryEscape("name LIKE 'model-009%'"), nil)},
			{fmt.Sprintf("GET /model-versions first page (%d versions)", benchModels*benchVersions),
				marshalled(func() (any, error) { return svc.ListModelVersions(ctx, "1", "", events.ListParams{End: 10}) }),
				mlflowCall(&url, http.MethodGet, "model-versions/search?max_results=10", nil)},
			{"GET /model-versions?model_id=model-00500",
				marshalled(func() (any, error) { return svc.ListModelVersions(ctx, "1", "model-00500", events.ListParams{End: 10}) }),
				mlflowCall(&url, http.MethodGet, "model-versions/search?max_results=10&filter="+neturl.QueryEscape("name='model-00500'"), nil)},
		}
		for _, c := range calls {
			m, f, to := median(b, c, n, restart)
			row(c.name, m, f, to)
		}
		rd.Close()
		stop()
	}
	benchPostgreSQL(b, venv, log, hc, row)
	fmt.Printf("\n| %-58s | %9s | %9s | %6s |\n|%s|%s|%s|%s|\n", "call (median of alternating rounds)", "mlpanel ms", "MLflow ms", "ratio",
		strings.Repeat("-", 60), strings.Repeat("-", 11), strings.Repeat("-", 11), strings.Repeat("-", 8))
	for _, r := range rows {
		fmt.Println(r)
	}
	fmt.Printf("\ntracking service (this process) memory after the benchmark: %s\n", rssMB())
}
