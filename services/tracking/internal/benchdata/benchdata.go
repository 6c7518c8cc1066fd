// Package benchdata builds the MLflow databases of the tracking service's
// benchmarks: the schema and experiments with MLflow's own code, then
// runs, metrics, params, tags and registered models written straight in
// MLflow's schema (100,000 runs in seconds, not hours of REST calls).
// One builder for every benchmark, so their figures are of the same data.
package benchdata

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	mrand "math/rand"
	neturl "net/url"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the admin connection, "pgx"
	_ "modernc.org/sqlite"             // the writer, "sqlite"

	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
)

// Base is the start time (ms) of the first run a builder writes.
const Base = int64(1_700_000_000_000)

// lrs are the values of param lr, drawn evenly.
var lrs = []string{"0.01", "0.1", "0.001"}

// experimentsScript makes experiment "big" (id 1) and n empty ones with
// MLflow's client on the store at argv[1]: the schema is MLflow's at the
// pinned revision.
const experimentsScript = `import sys
from mlflow.tracking import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
c.create_experiment("big")
for i in range(int(sys.argv[2])):
    c.create_experiment("empty-%d" % i)
`

func createExperiments(tb testing.TB, venv, storeURI string, empty int) {
	tb.Helper()
	if out, err := exec.Command(filepath.Join(venv, "python"), "-c", experimentsScript, storeURI, fmt.Sprint(empty)).CombinedOutput(); err != nil {
		tb.Fatalf("creating the database: %v\n%s", err, out)
	}
}

// NewSQLite creates the SQLite database at path (a project's
// mlflow.db) with MLflow's own code: experiment "big" (id 1) and empty
// more experiments without runs. venv is the virtualenv's bin folder.
// It carries the panel's indexes, as every project's database does once
// the projects service has started it (Index).
func NewSQLite(tb testing.TB, venv, path string, empty int) {
	createExperiments(tb, venv, "sqlite:///"+path, empty)
	Index(tb, path)
}

// Index adds the indexes the projects service adds to a SQLite project's
// database before each start (mlflowschema.Indexes), so that tests and
// benchmarks read what a panel-run project holds.
func Index(tb testing.TB, path string) {
	tb.Helper()
	db := openWriter(tb, path)
	defer db.Close()
	if err := mlflowschema.EnsureIndexes(context.Background(), db, mlflowschema.SQLite); err != nil {
		tb.Fatal(err)
	}
}

// openWriter opens the SQLite database at path for a bulk write.
func openWriter(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=synchronous(OFF)&_pragma=journal_mode(MEMORY)")
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// Touch commits one write to the SQLite database at path, as a training
// run logging a metric does: it moves the file change counter, so
// whatever a reader remembers about the database is read again.
func Touch(tb testing.TB, path string) {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE latest_metrics SET timestamp = timestamp + 1 WHERE rowid = (SELECT MIN(rowid) FROM latest_metrics)"); err != nil {
		tb.Fatal(err)
	}
}

// AddRuns writes runs finished runs to experiment 1 of the SQLite
// database at path, in one transaction: run i starts at start+i s, has
// metrics accuracy and loss (latest and history, values drawn from
// seed), param lr and the tags mlflow.runName and mlflow.user. Run ids
// are random.
func AddRuns(tb testing.TB, path string, runs int, seed, start int64) {
	tb.Helper()
	db := openWriter(tb, path)
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	prep := func(q string) *sql.Stmt {
		s, err := tx.Prepare(q)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	run := prep(`INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id)
		VALUES (?, ?, 'UNKNOWN', '', '', 'bench', 'FINISHED', ?, ?, '', 'active', ?, 1)`)
	latest := prep(`INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, 0, 0, ?)`)
	metric := prep(`INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, 0, 0, ?)`)
	param := prep(`INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)`)
	tag := prep(`INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)`)
	r := mrand.New(mrand.NewSource(seed))
	must := func(_ sql.Result, err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	for i := 0; i < runs; i++ {
		var id [16]byte
		_, _ = rand.Read(id[:])
		uid := hex.EncodeToString(id[:])
		t := start + int64(i)*1000
		name := fmt.Sprintf("run-%d", i)
		must(run.Exec(uid, name, t, t+500, "mlflow-artifacts:/1/"+uid+"/artifacts"))
		for _, k := range []string{"accuracy", "loss"} {
			v := r.Float64()
			must(latest.Exec(k, v, t+400, uid))
			must(metric.Exec(k, v, t+400, uid))
		}
		must(param.Exec("lr", lrs[r.Intn(3)], uid))
		must(tag.Exec("mlflow.runName", name, uid))
		must(tag.Exec("mlflow.user", "bench", uid))
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// Registry writes models registered models of versions versions each to
// the SQLite database at path, as MLflow's store writes them: a tag on
// every model, one on every version, an alias, stages moved.
func Registry(tb testing.TB, path string, models, versions int) {
	tb.Helper()
	db := openWriter(tb, path)
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	exec := func(q string, args ...any) {
		if _, err := tx.Exec(q, args...); err != nil {
			tb.Fatal(err)
		}
	}
	stages := []string{"None", "Staging", "Production", "Archived"}
	for i := 0; i < models; i++ {
		name := fmt.Sprintf("model-%05d", i)
		t := Base + int64(i)*10
		exec(`INSERT INTO registered_models (name, creation_time, last_updated_time, description, workspace) VALUES (?, ?, ?, '', 'default')`, name, t, t+int64(versions))
		exec(`INSERT INTO registered_model_tags (key, value, name, workspace) VALUES ('team', 'vision', ?, 'default')`, name)
		for v := 1; v <= versions; v++ {
			exec(`INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage, source, run_id, status, status_message, run_link, storage_location, workspace)
				VALUES (?, ?, ?, ?, '', NULL, ?, ?, NULL, 'READY', NULL, NULL, ?, 'default')`,
				name, v, t+int64(v), t+int64(v), stages[v%len(stages)], fmt.Sprintf("/models/%s/%d", name, v), fmt.Sprintf("/models/%s/%d", name, v))
			exec(`INSERT INTO model_version_tags (key, value, name, version, workspace) VALUES ('validated', 'yes', ?, ?, 'default')`, name, v)
		}
		exec(`INSERT INTO registered_model_aliases (alias, version, name, workspace) VALUES ('champion', ?, ?, 'default')`, versions, name)
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// MLflowURI is u as MLflow's backend store: with the psycopg2 driver
// the virtualenv pins.
func MLflowURI(u *neturl.URL) string {
	v := *u
	v.Scheme = "postgresql+psycopg2"
	return v.String()
}

// NewPostgreSQL is NewSQLite and AddRuns on PostgreSQL: MLflow's own
// code makes the schema and 21 experiments in a new database "bench" of
// the server at pg, COPY writes runs runs (the same tables and values
// as AddRuns, from a generator seeded per run), the panel's indexes go
// on as on a project that has started before, and ANALYZE gives the
// planner the statistics autovacuum would. It returns the database's
// name.
func NewPostgreSQL(tb testing.TB, venv, pg string, runs int) string {
	tb.Helper()
	ctx := context.Background()
	const name = "bench"
	admin, err := sql.Open("pgx", pg)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		tb.Fatal(err)
	}
	u, _ := neturl.Parse(pg)
	u.Path = "/" + name
	createExperiments(tb, venv, MLflowURI(u), 20)
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		tb.Fatal(err)
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
	run := func(i int) benchRun {
		r := mrand.New(mrand.NewSource(int64(i) + 1))
		var id [16]byte
		_, _ = r.Read(id[:])
		start := Base + int64(i)*1000
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
			tb.Fatalf("COPY %s: %v", t.table, err)
		}
	}
	// The panel's indexes, which the projects service adds before every
	// start after the first (MLflow makes the tables on the first).
	if err := mlflowschema.EnsureIndexesAt(ctx, "pgx", u.String(), mlflowschema.Postgres); err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		tb.Fatal(err)
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
