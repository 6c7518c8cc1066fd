package mlflowdb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	neturl "net/url"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
	"github.com/mlpanel/mlpanel/pkg/platform/pgtest"
	"github.com/mlpanel/mlpanel/services/tracking/app"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// The head this package's SQL reads is pinned, and checked against the
// installed MLflow, in pkg/platform/mlflowschema (TestHeadIsThePinnedMLflowHead).

// TestOtherRevisionFallsBackWithOneWarning: a database of another schema
// revision, or none at all, is answered through REST, and the log says so
// once per database, not once per request.
func TestOtherRevisionFallsBackWithOneWarning(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)", "INSERT INTO alembic_version VALUES ('0123456789ab')"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	var logs bytes.Buffer
	rd := New(slog.New(slog.NewTextHandler(&logs, nil)))
	defer rd.Close()
	for i := 0; i < 3; i++ {
		_, err := rd.SearchRuns(context.Background(), dir, app.DirectRunSearch{View: mc.ViewActive})
		if !errors.Is(err, app.ErrUseREST) {
			t.Fatalf("call %d: got %v, want ErrUseREST", i, err)
		}
		if _, err := rd.RunTimes(context.Background(), dir, []string{"1"}); !errors.Is(err, app.ErrUseREST) {
			t.Fatalf("RunTimes: got %v, want ErrUseREST", err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "0123456789ab") {
		t.Errorf("want one warning naming the revision, got %d:\n%s", n, logs.String())
	}
	if _, err := rd.SearchRuns(context.Background(), t.TempDir(), app.DirectRunSearch{}); !errors.Is(err, app.ErrUseREST) {
		t.Errorf("missing database: got %v, want ErrUseREST", err)
	}
}

// TestOtherBackendsFallBackWithOneWarning: a MySQL or PostgreSQL project
// while the tracking service lacks the setting of its database server
// (MLPANEL_PROJECT_MYSQL_URL, MLPANEL_PROJECT_DB_URL) is answered through
// REST; the log says why once per database.
func TestOtherBackendsFallBackWithOneWarning(t *testing.T) {
	var logs bytes.Buffer
	rd := New(slog.New(slog.NewTextHandler(&logs, nil)))
	defer rd.Close()
	for _, store := range []string{"mysql:mlflow", "postgresql:mlpanel_project_1_ab"} {
		for i := 0; i < 3; i++ {
			if _, err := rd.SearchRuns(context.Background(), store, app.DirectRunSearch{View: mc.ViewActive}); !errors.Is(err, app.ErrUseREST) {
				t.Fatalf("%s call %d: got %v, want ErrUseREST", store, i, err)
			}
			if _, err := rd.Experiments(context.Background(), store, mc.ViewActive); !errors.Is(err, app.ErrUseREST) {
				t.Fatalf("%s call %d: got %v, want ErrUseREST", store, i, err)
			}
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 || !strings.Contains(logs.String(), "MLPANEL_PROJECT_MYSQL_URL") || !strings.Contains(logs.String(), "MLPANEL_PROJECT_DB_URL") {
		t.Errorf("want one warning per database saying why, got %d:\n%s", n, logs.String())
	}
}

// TestParserLeavesWhatItDoesNotKnowToMLflow: forms the strict parser does
// not take are not guessed at.
func TestParserLeavesWhatItDoesNotKnowToMLflow(t *testing.T) {
	for _, f := range []string{"status = 'X'", "metrics.a > -1", "params.a = 'it''s'", "params.a = 'x' OR params.b = 'y'",
		"metrics.a > 1e3", "tags.a <> 'x'", "params.a = 'x' AND", "params.a IN ('x')", "attributes.lifecycle_stage = 'active'"} {
		if _, err := parseFilter(f); err == nil {
			t.Errorf("%q: parsed, want left to MLflow", f)
		}
	}
	got, err := parseFilter("metrics.`acc` >= 0.9 and params.lr = \"0.01\" AND attributes.run_id NOT IN ('a', 'b') AND tags.mlflow.runName ILIKE '%x%'")
	if err != nil || len(got) != 4 || got[0].key != "acc" || got[1].value != "0.01" || got[2].op != "NOT IN" || got[3].key != "mlflow.runName" {
		t.Errorf("got %+v, %v", got, err)
	}
}

// TestRunTimesSeeEveryCommit: the counts are cached per database state,
// so a run MLflow commits is counted on the next request.
func TestRunTimesSeeEveryCommit(t *testing.T) {
	dir := t.TempDir()
	w, err := sql.Open("sqlite", "file:"+DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rev := mlflowschema.Head
	for _, q := range []string{"CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)", "INSERT INTO alembic_version VALUES ('" + rev + "')",
		"CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, experiment_id INTEGER, lifecycle_stage TEXT, status TEXT, start_time BIGINT, end_time BIGINT)",
		"INSERT INTO runs VALUES ('a', 1, 'active', 'FINISHED', 100, 200)"} {
		if _, err := w.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	rd := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer rd.Close()
	want := func(count int, last int64) {
		t.Helper()
		got, err := rd.RunTimes(context.Background(), dir, []string{"1", "2"})
		if err != nil {
			t.Fatal(err)
		}
		if got["1"].Count != count || got["1"].LastUpdate != last || len(got) != 1 {
			t.Errorf("got %+v, want experiment 1 with %d runs, last update %d", got, count, last)
		}
	}
	want(1, 200)
	want(1, 200) // from the cache
	if _, err := w.Exec("INSERT INTO runs VALUES ('b', 1, 'active', 'RUNNING', 300, NULL)"); err != nil {
		t.Fatal(err)
	}
	want(2, 300)
	if _, err := w.Exec("UPDATE runs SET lifecycle_stage = 'deleted' WHERE run_uuid = 'b'"); err != nil {
		t.Fatal(err)
	}
	want(1, 200)
}

// TestRunTotalsSeeEveryCommit: a search's total is cached per database
// state like the run times, so a commit is counted on the next page, in
// each view and for each experiment list.
func TestRunTotalsSeeEveryCommit(t *testing.T) {
	dir := t.TempDir()
	w, err := sql.Open("sqlite", "file:"+DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, q := range []string{"CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)", "INSERT INTO alembic_version VALUES ('" + mlflowschema.Head + "')",
		"CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, lifecycle_stage TEXT)",
		"INSERT INTO experiments VALUES (1, 'active'), (2, 'active')",
		"CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, experiment_id INTEGER, lifecycle_stage TEXT, status TEXT, start_time BIGINT, end_time BIGINT)",
		"INSERT INTO runs VALUES ('a', 1, 'active', 'FINISHED', 100, 200), ('b', 2, 'active', 'FINISHED', 100, 200)"} {
		if _, err := w.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	rd := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer rd.Close()
	want := func(exps []string, view string, total int) {
		t.Helper()
		page, err := rd.SearchRuns(context.Background(), dir, app.DirectRunSearch{ExperimentIDs: exps, View: view, Limit: -1})
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != total {
			t.Errorf("experiments %v, view %q: total %d, want %d", exps, view, page.Total, total)
		}
	}
	check := func(one, all, deleted int) {
		t.Helper()
		for range 2 { // the second from the cache
			want([]string{"1"}, "", one)
			want(nil, "", all)
			want([]string{"1"}, "DELETED_ONLY", deleted)
		}
	}
	check(1, 2, 0)
	if n := len(rd.totals.by); n != 3 {
		t.Fatalf("%d totals remembered, want the 3 searches", n)
	}
	if _, err := w.Exec("INSERT INTO runs VALUES ('c', 1, 'active', 'RUNNING', 300, NULL)"); err != nil {
		t.Fatal(err)
	}
	check(2, 3, 0)
	if _, err := w.Exec("UPDATE runs SET lifecycle_stage = 'deleted' WHERE run_uuid = 'c'"); err != nil {
		t.Fatal(err)
	}
	check(1, 2, 1)
	if _, err := w.Exec("UPDATE experiments SET lifecycle_stage = 'deleted' WHERE experiment_id = 2"); err != nil {
		t.Fatal(err)
	}
	check(1, 1, 1)
}

// TestRunTimesSeeEveryCommitOnPostgreSQL: on PostgreSQL the counts are
// cached per transaction snapshot, and a run committed by MLflow (here, by
// another session) is counted on the next request.
func TestRunTimesSeeEveryCommitOnPostgreSQL(t *testing.T) {
	server := pgtest.Start(t)
	admin, err := sql.Open("pgx", server)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE times"); err != nil {
		t.Fatal(err)
	}
	u, _ := neturl.Parse(server)
	u.Path = "/times"
	w, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rev := mlflowschema.Head
	for _, q := range []string{"CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)", "INSERT INTO alembic_version VALUES ('" + rev + "')",
		"CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, experiment_id INTEGER, lifecycle_stage TEXT, status TEXT, start_time BIGINT, end_time BIGINT)",
		"INSERT INTO runs VALUES ('a', 1, 'active', 'FINISHED', 100, 200)"} {
		if _, err := w.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	rd := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	rd.PostgresURL = server
	defer rd.Close()
	want := func(count int, last int64) {
		t.Helper()
		got, err := rd.RunTimes(context.Background(), "postgresql:times", []string{"1", "2"})
		if err != nil {
			t.Fatal(err)
		}
		if got["1"].Count != count || got["1"].LastUpdate != last || len(got) != 1 {
			t.Errorf("got %+v, want experiment 1 with %d runs, last update %d", got, count, last)
		}
	}
	want(1, 200)
	want(1, 200)
	if rd.times.by["postgresql:times"] == nil {
		t.Error("nothing was cached for the PostgreSQL database")
	}
	if _, err := w.Exec("INSERT INTO runs VALUES ('b', 1, 'active', 'RUNNING', 300, NULL)"); err != nil {
		t.Fatal(err)
	}
	want(2, 300)
	tx, err := w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE runs SET lifecycle_stage = 'deleted' WHERE run_uuid = 'b'"); err != nil {
		t.Fatal(err)
	}
	want(2, 300) // not committed yet
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	want(1, 200)
}

// TestReaderBoundsOpenConnections: every open SQLite connection holds
// MLflow's parsed schema and a page cache (about 1 MB each), so reading
// many projects keeps a connection open for the MaxWarm most recently
// read databases only, each with a small cache; a database whose
// connection was closed still answers its next read.
func TestReaderBoundsOpenConnections(t *testing.T) {
	ctx := context.Background()
	rd := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer rd.Close()
	rd.MaxWarm = 2
	var keys []string
	for i := 0; i < 5; i++ {
		path := DBPath(t.TempDir())
		db, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)", "INSERT INTO alembic_version VALUES ('" + mlflowschema.Head + "')"} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		keys = append(keys, path)
	}
	for _, k := range keys {
		if _, err := rd.db(ctx, k); err != nil {
			t.Fatalf("reading %s: %v", k, err)
		}
	}
	open := 0
	for i, k := range keys {
		n := rd.dbs[k].Stats().OpenConnections
		open += n
		if n > 0 && i < len(keys)-2 {
			t.Errorf("database %d of 5 keeps %d connections open; only the 2 most recently read may", i+1, n)
		}
	}
	if open > 2 {
		t.Errorf("%d connections open after reading 5 databases with MaxWarm 2", open)
	}
	c, err := rd.db(ctx, keys[0])
	if err != nil {
		t.Fatalf("reading the first database again: %v", err)
	}
	var kib int
	if err := c.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&kib); err != nil || kib != -cacheKiB {
		t.Errorf("cache_size %d (%v), want -%d (KiB)", kib, err, cacheKiB)
	}
}
