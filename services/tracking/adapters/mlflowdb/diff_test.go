package mlflowdb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/pgtest"
	"github.com/mlpanel/mlpanel/services/tracking/app"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	"github.com/mlpanel/mlpanel/services/tracking/internal/benchdata"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// repoRoot is the directory holding go.work.
func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.work above the test directory")
		}
		dir = parent
	}
}

// fixture is a project whose database was filled by MLflow's own store
// code, served by a real `mlflow server`.
type fixture struct {
	dir   string // project folder: the server's log and artifacts, and mlflow.db for SQLite
	store string // the project's database as app.Project.Store names it
	url   string // tracking server
}

// newFixture fills a SQLite database with gen_runs.py and starts `mlflow
// server` on it; the server's process group is killed when the test ends.
func newFixture(t testing.TB, runs int, seed int) fixture {
	dir := fixtureDir(t)
	fill(t, DBPath(dir), runs, seed)
	benchdata.Index(t, DBPath(dir))
	url, _ := startMLflow(t, venvBin(t), dir)
	return fixture{dir: dir, store: dir, url: url}
}

// newPGFixture is newFixture on a new database of the PostgreSQL server
// at pgURL (pgtest.Start): MLflow's schema and data as MLflow writes them
// there, read through the same code.
func newPGFixture(t testing.TB, pgURL string, runs int, seed int) fixture {
	dir := fixtureDir(t)
	name := fmt.Sprintf("mlflow_fixture_%d", seed)
	admin, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	u, err := neturl.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	u.Scheme = "postgresql+psycopg2" // the driver python/requirements.txt pins
	fill(t, u.String(), runs, seed)
	url, _ := startMLflowOn(t, venvBin(t), dir, u.String())
	return fixture{dir: dir, store: "postgresql:" + name, url: url}
}

func venvBin(t testing.TB) string {
	venv := filepath.Join(repoRoot(t), ".venv", "bin")
	if _, err := os.Stat(filepath.Join(venv, "mlflow")); err != nil {
		t.Fatalf("no .venv/bin/mlflow (%v): run `make venv`; this test compares with a real MLflow server", err)
	}
	return venv
}

func fixtureDir(t testing.TB) string {
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm" // MLflow commits every call: tmpfs saves most of the fill time
	}
	dir, err := os.MkdirTemp(base, "mlpanel-mlflowdb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fill writes the runs of gen_runs.py to a SQLite file or database URL.
func fill(t testing.TB, db string, runs, seed int) {
	gen := exec.Command(filepath.Join(venvBin(t), "python"), filepath.Join("testdata", "gen_runs.py"), db, fmt.Sprint(runs), fmt.Sprint(seed))
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("filling the database: %v\n%s", err, out)
	}
}

// startMLflow starts `mlflow server` on dir's database; stop (also run
// when the test ends) kills its process group.
func startMLflow(t testing.TB, venv, dir string) (url string, stop func()) {
	return startMLflowOn(t, venv, dir, "sqlite:///"+DBPath(dir))
}

// startMLflowOn starts `mlflow server` on the backend store storeURI,
// with its log and artifacts in dir.
func startMLflowOn(t testing.TB, venv, dir, storeURI string) (url string, stop func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(venv, "mlflow"), "server", "--backend-store-uri", storeURI,
		"--artifacts-destination", filepath.Join(dir, "artifacts"), "--host", "127.0.0.1", "--port", fmt.Sprint(port), "--workers", "1")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			logf.Close()
		})
	}
	t.Cleanup(stop)
	url = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url, stop
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("mlflow server did not answer /health in 90s:\n%s", log)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// restError is MLflow's refusal of a request.
type restError struct {
	status int
	body   string
}

func (e *restError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

func post(url, path string, body any, out any) error {
	b, _ := json.Marshal(body)
	resp, err := http.Post(url+"/api/2.0/mlflow/"+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return &restError{resp.StatusCode, string(data)}
	}
	return json.Unmarshal(data, out)
}

// restSearch walks every page of MLflow's runs/search.
func restSearch(url string, s app.DirectRunSearch) ([]json.RawMessage, error) {
	var all []json.RawMessage
	token := ""
	for {
		var page struct {
			Runs          []json.RawMessage `json:"runs"`
			NextPageToken string            `json:"next_page_token"`
		}
		body := map[string]any{"experiment_ids": s.ExperimentIDs, "filter": s.Filter, "run_view_type": s.View,
			"max_results": 1000, "order_by": s.OrderBy, "page_token": token}
		if err := post(url, "runs/search", body, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Runs...)
		if page.NextPageToken == "" {
			return all, nil
		}
		token = page.NextPageToken
	}
}

func runIDs(raw []json.RawMessage) []string {
	ids := make([]string, len(raw))
	for i, r := range raw {
		var run mc.Run
		_ = json.Unmarshal(r, &run)
		ids[i] = run.Info.RunID
	}
	return ids
}

// filterGen makes MLflow run filters from the grammar's parts, valid and
// invalid ones, over the values gen_runs.py writes.
type filterGen struct {
	r   *rand.Rand
	ids []string
}

func (g filterGen) pick(s ...string) string { return s[g.r.Intn(len(s))] }

func (g filterGen) clause() string {
	num := g.pick("0", "0.5", "0.9", "1", "1.0", "2.5", "0.95", "100")
	str := func(vals ...string) string {
		v := g.pick(vals...)
		if g.r.Intn(8) == 0 {
			return `"` + v + `"`
		}
		return "'" + v + "'"
	}
	switch g.r.Intn(13) {
	case 0, 1:
		return fmt.Sprintf("%s.%s %s %s", g.pick("metrics", "metric", "`metrics`"), g.pick("accuracy", "loss", "f1", "missing", "`accuracy`"),
			g.pick("=", "!=", "<", ">", "<=", ">="), num)
	case 2, 3:
		op := g.pick("=", "!=", "LIKE", "ILIKE", "like", "ilike")
		return fmt.Sprintf("%s.%s %s %s", g.pick("params", "param", "parameter"), g.pick("lr", "model", "epochs", "nope"), op,
			str("0.01", "0.1", "cnn", "CNN", "%nn%", "C%", "0.0_", "%", "1e-3", "0.01 ", "rnn", "7"))
	case 4:
		return fmt.Sprintf("%s.%s %s", g.pick("params", "tags"), g.pick("lr", "model", "team", "missing"), g.pick("IS NULL", "IS NOT NULL", "is null"))
	case 5, 6:
		return fmt.Sprintf("%s.%s %s %s", g.pick("tags", "tag"), g.pick("team", "idx", "mlflow.runName", "`mlflow.note.content`", "\"team\""),
			g.pick("=", "!=", "LIKE", "ILIKE"), str("vision", "Vision", "nlp", "%is%", "V%", "1", "1_", "run-a", "bad run", ""))
	case 7:
		return fmt.Sprintf("%s.%s %s %s", g.pick("attributes", "attribute", "attr", "run"), g.pick("run_name", "status", "user_id", "artifact_uri"),
			g.pick("=", "!=", "LIKE", "ILIKE"), str("run-a", "Run-A", "RUN-A", "run%", "%-1%", "x%y", "x_y", "FINISHED", "finished", "RUNNING", "%1%", "%"))
	case 8:
		return fmt.Sprintf("attributes.%s %s %d", g.pick("start_time", "end_time", "created"), g.pick("=", "!=", "<", ">", "<=", ">="),
			1_700_000_000_000+int64(g.r.Intn(45))*1000)
	case 9:
		var ids []string
		for i := 0; i < 1+g.r.Intn(4); i++ {
			ids = append(ids, "'"+g.ids[g.r.Intn(len(g.ids))]+"'")
		}
		return fmt.Sprintf("attributes.run_id %s (%s)", g.pick("IN", "NOT IN", "in"), strings.Join(ids, ", "))
	case 10:
		if g.r.Intn(2) == 0 {
			return fmt.Sprintf("datasets.%s %s (%s)", g.pick("name", "digest", "context"), g.pick("IN", "NOT IN"), g.pick("'iris'", "'iris', 'wine'", "'training'", "'abc123'"))
		}
		return fmt.Sprintf("datasets.%s %s %s", g.pick("name", "digest", "context"), g.pick("=", "!=", "LIKE", "ILIKE"), str("iris", "Iris", "I%", "training", "%ain%", "abc123"))
	case 11:
		return fmt.Sprintf("attributes.run_id = '%s'", g.ids[g.r.Intn(len(g.ids))])
	default: // what MLflow refuses, or what the SQL path leaves to MLflow
		return g.pick("metrics.accuracy = 'a'", "params.lr > 1", "params.lr = 0.01", "attributes.status IN ('FINISHED')",
			"status = 'FINISHED'", "metrics.accuracy > -1", "tags.team <> 'nlp'", "foo.bar = 'x'", "metrics.accuracy IS NULL",
			"attributes.start_time = 'x'", "datasets.source = 'x'", "params.lr = 'a' OR params.lr = 'b'", "metrics.loss > 1e-3")
	}
}

func (g filterGen) filter() string {
	n := g.r.Intn(4) // 0: no filter
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, g.clause())
	}
	return strings.Join(parts, g.pick(" AND ", " and ", "  AND "))
}

func (g filterGen) order() []string {
	var out []string
	for i := 0; i < g.r.Intn(3); i++ {
		out = append(out, g.pick("metrics.accuracy DESC", "metrics.loss", "metrics.f1 ASC", "params.lr", "params.model DESC",
			"tags.team DESC", "tags.idx", "attributes.start_time ASC", "attributes.run_name", "attributes.end_time DESC",
			"attributes.status", "attribute.user_id", "start_time", "metrics.`accuracy` desc", "params.epochs DESC"))
	}
	return out
}

// TestSearchRunsAgreesWithMLflow runs a few hundred generated filters,
// orderings, views and experiment sets through the SQL path and through a
// real MLflow server's runs/search on the same database: the same ids in
// the same order with the same total, or a fallback to MLflow. Where
// MLflow refuses a filter, the SQL path must have fallen back (so the user
// gets MLflow's message).
func TestSearchRunsAgreesWithMLflow(t *testing.T) {
	fx := newFixture(t, 250, 7)
	rd := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer rd.Close()
	// Both plans of the SQL path are compared below: a dense key is read
	// by a scan of its table, a rare one through its index.
	ctx := context.Background()
	db, err := rd.db(ctx, DBPath(fx.dir))
	if err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]bool{"metrics.accuracy > 0.5": true, "params.lr = '0.01'": true, "metrics.missing > 0": false, "params.nope = 'x'": false} {
		filters, err := parseFilter(f)
		if err != nil {
			t.Fatal(err)
		}
		if d, err := chooseDriver(ctx, db, filters); err != nil || (d >= 0) != want {
			t.Fatalf("chooseDriver(%q) = %d, %v; want a table scan: %v", f, d, err, want)
		}
	}
	searchRunsAgree(t, fx, rd)
}

// TestReadsAgreeWithMLflowOnPostgreSQL is the differential test of the
// SQL path on a project whose MLflow server keeps its data in PostgreSQL
// (backend postgresql): the same generated searches, whole runs,
// experiments, run times and metric histories as MLflow sends them.
func TestReadsAgreeWithMLflowOnPostgreSQL(t *testing.T) {
	pg := pgtest.Start(t)
	fx := newPGFixture(t, pg, 250, 7)
	var logs bytes.Buffer
	rd := New(slog.New(slog.NewTextHandler(&logs, nil)))
	rd.PostgresURL = pg
	defer rd.Close()
	t.Run("search", func(t *testing.T) { searchRunsAgree(t, fx, rd) })
	t.Run("runs and experiments", func(t *testing.T) { runsAndExperimentsAgree(t, fx, rd) })
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("the SQL path fell back to REST for the whole database:\n%s", logs.String())
	}
}

// searchRunsAgree is the body of the differential test on fx.
func searchRunsAgree(t *testing.T, fx fixture, rd *Reader) {
	ctx := context.Background()
	all, err := restSearch(fx.url, app.DirectRunSearch{ExperimentIDs: []string{"0", "1", "2", "3", "4"}, View: mc.ViewAll})
	if err != nil {
		t.Fatal(err)
	}
	ids := runIDs(all)
	if len(ids) < 200 {
		t.Fatalf("fixture has %d runs, want at least 200", len(ids))
	}
	g := filterGen{r: rand.New(rand.NewSource(12)), ids: ids}
	expSets := [][]string{nil, {"1", "2", "3"}, {"2"}, {"1", "3"}, {"3", "1", "1"}, {"4"}, {"1", "4"}, {"0"}}
	views := []string{mc.ViewActive, mc.ViewActive, mc.ViewDeleted, mc.ViewAll}
	var answered, fellBack, refused int
	for i := 0; i < 400; i++ {
		s := app.DirectRunSearch{ExperimentIDs: expSets[g.r.Intn(len(expSets))], Filter: g.filter(), OrderBy: g.order(), View: views[g.r.Intn(len(views))]}
		restIDs := s.ExperimentIDs
		if restIDs == nil {
			restIDs = []string{"0", "1", "2", "3"} // every active experiment
		}
		rs := s
		rs.ExperimentIDs = restIDs
		want, restErr := restSearch(fx.url, rs)
		got, err := rd.SearchRuns(ctx, fx.store, s)
		var re *restError
		switch {
		case errors.As(restErr, &re):
			refused++
			if !errors.Is(err, app.ErrUseREST) {
				t.Errorf("case %d %+v: MLflow refuses (%s) but the SQL path answered %d runs", i, s, re.body, len(got.Runs))
			}
			continue
		case restErr != nil:
			t.Fatalf("case %d %+v: MLflow: %v", i, s, restErr)
		}
		if errors.Is(err, app.ErrUseREST) {
			fellBack++
			continue
		}
		if err != nil {
			t.Fatalf("case %d %+v: %v", i, s, err)
		}
		answered++
		gotIDs := make([]string, len(got.Runs))
		for j, r := range got.Runs {
			gotIDs[j] = r.Info.RunID
		}
		if wantIDs := runIDs(want); !reflect.DeepEqual(gotIDs, wantIDs) || got.Total != len(wantIDs) {
			t.Errorf("case %d filter %q order %q view %s exps %v:\n got %d (total %d) %v\nwant %d %v", i, s.Filter, s.OrderBy, s.View, s.ExperimentIDs,
				len(gotIDs), got.Total, head(gotIDs), len(wantIDs), head(wantIDs))
			continue
		}
		// The same window as _start/_end would ask for.
		s.Offset, s.Limit = 3, 7
		pg, err := rd.SearchRuns(ctx, fx.store, s)
		if err != nil {
			t.Fatalf("case %d page: %v", i, err)
		}
		lo, hi := min(3, len(gotIDs)), min(10, len(gotIDs))
		var pgIDs []string
		for _, r := range pg.Runs {
			pgIDs = append(pgIDs, r.Info.RunID)
		}
		if !reflect.DeepEqual(pgIDs, gotIDs[lo:hi]) && !(len(pgIDs) == 0 && lo == hi) || pg.Total != len(gotIDs) {
			t.Errorf("case %d window 3..10: got %v total %d, want %v total %d", i, pgIDs, pg.Total, gotIDs[lo:hi], len(gotIDs))
		}
	}
	t.Logf("%d searches answered from SQL and equal to MLflow's, %d left to MLflow, %d refused by MLflow", answered, fellBack, refused)
	if answered < 200 || refused < 20 {
		t.Errorf("the generator must exercise the SQL path: %d answered (want >= 200), %d refused (want >= 20)", answered, refused)
	}
}

func head(ids []string) []string {
	if len(ids) > 8 {
		return ids[:8]
	}
	return ids
}

// TestRunsAndExperimentsAsMLflowSendsThem compares whole runs (info,
// latest metrics with NaN and infinities, params, tags, inputs, outputs),
// experiments with their tags, and the run counts and times of the
// experiment time rule with what MLflow's REST API sends.
func TestRunsAndExperimentsAsMLflowSendsThem(t *testing.T) {
	fx := newFixture(t, 120, 3)
	rd := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer rd.Close()
	runsAndExperimentsAgree(t, fx, rd)
}

// runsAndExperimentsAgree is the body of TestRunsAndExperimentsAsMLflowSendsThem on fx.
func runsAndExperimentsAgree(t *testing.T, fx fixture, rd *Reader) {
	ctx := context.Background()

	s := app.DirectRunSearch{ExperimentIDs: []string{"0", "1", "2", "3"}, View: mc.ViewAll}
	want, err := restSearch(fx.url, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rd.SearchRuns(ctx, fx.store, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Runs) != len(want) {
		t.Fatalf("got %d runs, want %d", len(got.Runs), len(want))
	}
	incomplete := 0
	for i, raw := range want {
		var w mc.Run
		if err := json.Unmarshal(raw, &w); err != nil {
			t.Fatal(err)
		}
		g := got.Runs[i]
		if got.Incomplete[i] {
			incomplete++
			continue // the use case reads these through runs/get
		}
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		if !bytes.Equal(gj, wj) {
			t.Errorf("run %s:\n got %s\nwant %s", w.Info.RunID, gj, wj)
		}
	}
	if incomplete == 0 {
		t.Error("no run with dataset inputs was marked incomplete; the fixture logs some")
	}

	var exps struct {
		Experiments []mc.Experiment `json:"experiments"`
	}
	if err := post(fx.url, "experiments/search", map[string]any{"view_type": mc.ViewAll, "max_results": 1000}, &exps); err != nil {
		t.Fatal(err)
	}
	gotExps, err := rd.Experiments(ctx, fx.store, mc.ViewAll)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range gotExps {
		ids = append(ids, e.ExperimentID)
	}
	tags, err := rd.ExperimentTags(ctx, fx.store, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i := range gotExps {
		gotExps[i].Tags = tags[gotExps[i].ExperimentID]
		sortTags(gotExps[i].Tags)
	}
	for i := range exps.Experiments {
		sortTags(exps.Experiments[i].Tags)
	}
	if !reflect.DeepEqual(gotExps, exps.Experiments) {
		t.Errorf("experiments:\n got %+v\nwant %+v", gotExps, exps.Experiments)
	}

	// Run counts and times: what domain.RunTimes.Add makes of every active run.
	active, err := restSearch(fx.url, app.DirectRunSearch{ExperimentIDs: ids, View: mc.ViewActive})
	if err != nil {
		t.Fatal(err)
	}
	wantTimes := map[string]domain.RunTimes{}
	for _, raw := range active {
		var r mc.Run
		_ = json.Unmarshal(raw, &r)
		rt := wantTimes[r.Info.ExperimentID]
		rt.Add(r.Info)
		wantTimes[r.Info.ExperimentID] = rt
	}
	// Metric history pages: the REST history ordered as the use case's
	// page() orders it, windowed, against the SQL page.
	checked := 0
	for _, raw := range active[:min(40, len(active))] {
		var r mc.Run
		_ = json.Unmarshal(raw, &r)
		for _, m := range r.Data.Metrics {
			var hist struct {
				Metrics []mc.Metric `json:"metrics"`
			}
			resp, err := http.Get(fx.url + "/api/2.0/mlflow/metrics/get-history?run_id=" + r.Info.RunID + "&metric_key=" + m.Key)
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(&hist)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, lp := range []events.ListParams{{Sort: "step"}, {Sort: "step", Order: "DESC", Start: 1, End: 3}, {Sort: "timestamp", Order: "DESC"}, {Sort: "timestamp", End: 1}} {
				points := make([]domain.MetricPoint, len(hist.Metrics))
				for i, h := range hist.Metrics {
					points[i] = domain.MetricPoint{Key: h.Key, Step: h.Step, Timestamp: h.Timestamp, Value: h.Value}
				}
				want := events.Page(points, lp, domain.MetricSortKeys[lp.Sort])
				limit := 0
				if lp.End > 0 {
					limit = lp.End - lp.Start
				}
				got, err := rd.MetricHistory(ctx, fx.store, r.Info.RunID, m.Key, lp.Sort, lp.Desc(), lp.Start, limit)
				if err != nil {
					t.Fatalf("history of %s %s: %v", r.Info.RunID, m.Key, err)
				}
				gj, _ := json.Marshal(got.Points)
				wj, _ := json.Marshal(want.Items)
				if string(gj) != string(wj) && !(len(got.Points) == 0 && len(want.Items) == 0) || got.Total != want.Total {
					t.Errorf("history of %s %s %+v:\n got %s (total %d)\nwant %s (total %d)", r.Info.RunID, m.Key, lp, gj, got.Total, wj, want.Total)
				}
				checked++
			}
		}
	}
	if checked < 40 {
		t.Errorf("only %d metric history pages compared", checked)
	}

	gotTimes, err := rd.RunTimes(ctx, fx.store, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotTimes, wantTimes) {
		t.Errorf("run times:\n got %+v\nwant %+v", gotTimes, wantTimes)
	}
}

func sortTags(ts []mc.Tag) { sort.Slice(ts, func(i, j int) bool { return ts[i].Key < ts[j].Key }) }

// TestServiceAnswersAsBefore drives the tracking use cases twice on the
// same project, through MLflow's REST API only (the service as it was)
// and with the direct reads, and compares the JSON answers and errors of
// run lists (including runs with dataset inputs, read through runs/get),
// experiment lists in every order and view, experiment gets and metric
// history pages, registered model and model version lists in every
// order, filter and window.
func TestServiceAnswersAsBefore(t *testing.T) {
	fx := newFixture(t, 150, 5)
	fillModels(t, fx.dir, 30, 6, 5)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hc := &http.Client{Timeout: time.Minute}
	project := benchProjects{app.Project{ID: "1", Name: "p", Status: app.StatusRunning, InternalURL: fx.url, Path: fx.dir}}
	clients := func(u string) *mc.Client { return mc.New(u, hc) }
	now := func() int64 { return 1 }
	rest := app.New(project, clients, log, now)
	direct := app.New(project, clients, log, now)
	rd := New(log)
	defer rd.Close()
	direct.UseDirectReads(rd)

	same := func(what string, call func(s *app.Service) (any, error)) {
		t.Helper()
		a, errA := call(rest)
		b, errB := call(direct)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if fmt.Sprint(errA) != fmt.Sprint(errB) || !bytes.Equal(ja, jb) {
			t.Errorf("%s:\nREST   %v %.600s\ndirect %v %.600s", what, errA, ja, errB, jb)
		}
	}
	runQueries := []app.RunQuery{{}, {ExperimentID: "1"}, {ExperimentID: "1,2"}, {ExperimentID: "4"}, {ExperimentID: "99"},
		{ExperimentID: "2", View: "all", OrderBy: "metrics.accuracy DESC, params.lr"}, {Filter: "params.model ILIKE '%nn%'"},
		{View: "deleted"}, {Filter: "datasets.name = 'iris'"}, {Filter: "metrics.accuracy = 'x'"}}
	windows := []events.ListParams{{}, {Start: 0, End: 10}, {Start: 20, End: 25}, {Start: 5000, End: 5010}, {Start: 3, End: 2}}
	for _, q := range runQueries {
		for _, lp := range windows {
			q.Project = "1"
			same(fmt.Sprintf("ListRuns %+v %+v", q, lp), func(s *app.Service) (any, error) { return s.ListRuns(ctx, q, lp) })
		}
	}
	for _, view := range []string{"", "all", "deleted"} {
		for _, sort := range []string{"", "id", "name", "creation_time", "last_update_time", "run_count", "lifecycle_stage", "nope"} {
			for _, lp := range []events.ListParams{{Sort: sort}, {Sort: sort, Order: "DESC", Start: 1, End: 3}} {
				same(fmt.Sprintf("ListExperiments view=%s %+v", view, lp), func(s *app.Service) (any, error) {
					return s.ListExperiments(ctx, app.ExperimentQuery{Project: "1", View: view}, lp)
				})
			}
		}
	}
	regWindows := []events.ListParams{{}, {End: 10}, {Start: 4, End: 9, Order: "DESC"}, {Start: 500, End: 510}, {Start: 3, End: 2}}
	for _, f := range []string{"", "name LIKE 'iris%'", "name ILIKE '%cnn%'", "name = 'wine-0002'", "tags.team = 'nlp'", "name = 'a-prompt'", "nope = 1"} {
		for _, sort := range []string{"", "name", "creation_timestamp", "last_updated_timestamp", "nope"} {
			for _, lp := range regWindows {
				lp.Sort = sort
				same(fmt.Sprintf("ListRegisteredModels %q %+v", f, lp), func(s *app.Service) (any, error) {
					return s.ListRegisteredModels(ctx, "1", f, lp)
				})
			}
		}
	}
	for _, model := range []string{"", "iris-0000", "50%off-0005", "a-prompt", "nope", "it's"} {
		for _, sort := range []string{"", "id", "version", "status", "last_updated_timestamp", "nope"} {
			for _, lp := range regWindows {
				lp.Sort = sort
				same(fmt.Sprintf("ListModelVersions %q %+v", model, lp), func(s *app.Service) (any, error) {
					return s.ListModelVersions(ctx, "1", model, lp)
				})
			}
		}
	}
	for _, id := range []string{"0", "1", "2", "3", "4", "99"} {
		same("GetExperiment "+id, func(s *app.Service) (any, error) { return s.GetExperiment(ctx, "1", id) })
	}
	page, err := rest.ListRuns(ctx, app.RunQuery{Project: "1", View: "all"}, events.ListParams{End: 30})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page.Items {
		for _, key := range []string{"accuracy", "loss", "nope"} {
			for _, lp := range []events.ListParams{{}, {Start: 1, End: 2}, {Sort: "timestamp", Order: "DESC"}, {Sort: "value"}} {
				same(fmt.Sprintf("MetricHistory %s %s %+v", r.ID, key, lp), func(s *app.Service) (any, error) {
					return s.MetricHistory(ctx, "1", r.ID, key, lp)
				})
			}
		}
	}
}
