package mlflowdb

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/mysqltest"
	"github.com/mlpanel/mlpanel/pkg/platform/mysqlurl"
)

// newMySQLFixture fills a database of its own on the MySQL/MariaDB
// server at server, made as the projects service makes a project's,
// with gen_runs.py, through MLflow's own store code and PyMySQL as a
// project's server writes it, and starts `mlflow server` on it.
func newMySQLFixture(t testing.TB, server string, runs int, seed int) fixture {
	dir := fixtureDir(t)
	name := fmt.Sprintf("mlflow_fixture_%d", seed)
	dsn, err := mysqlurl.DSN(server, "")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name + " " + mysqlurl.DatabaseOptions); err != nil {
		t.Fatal(err)
	}
	uri, err := mysqlurl.SQLAlchemyURL(server, name)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, uri, runs, seed)
	url, _ := startMLflowOn(t, venvBin(t), dir, uri)
	return fixture{dir: dir, store: "mysql:" + name, url: url}
}

// TestReadsAgreeWithMLflowOnMySQL is the differential test of the SQL
// path on a project whose MLflow server keeps its data in MariaDB
// (backend mysql): the same generated searches, whole runs, experiments,
// run times and metric histories as MLflow sends them.
func TestReadsAgreeWithMLflowOnMySQL(t *testing.T) {
	server := mysqltest.Start(t)
	fx := newMySQLFixture(t, server, 250, 7)
	var logs bytes.Buffer
	rd := New(slog.New(slog.NewTextHandler(&logs, nil)))
	rd.MySQLURL = server
	defer rd.Close()
	t.Run("search", func(t *testing.T) { searchRunsAgree(t, fx, rd) })
	t.Run("runs and experiments", func(t *testing.T) { runsAndExperimentsAgree(t, fx, rd) })
	// A database the panel did not make may have MySQL's default
	// collation, under which 'vision' = 'Vision': MLflow then counts case
	// through BINARY, and so must the SQL path.
	t.Run("search under a case-insensitive collation", func(t *testing.T) {
		caseInsensitive(t, server, strings.TrimPrefix(fx.store, "mysql:"))
		searchRunsAgree(t, fx, rd)
	})
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("the SQL path fell back to REST for the whole database:\n%s", logs.String())
	}
}

// caseInsensitive converts the tables whose strings the generated filters
// compare to utf8mb4_general_ci, MySQL's usual default. (The datasets
// table stays: "iris" and "Iris" of one digest would collide in its key.)
func caseInsensitive(t *testing.T, server, name string) {
	dsn, err := mysqlurl.DSN(server, name)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The foreign keys between these tables would refuse a collation
	// change of one side at a time.
	stmts := []string{"SET SESSION foreign_key_checks = 0"}
	for _, table := range []string{"runs", "params", "tags", "latest_metrics", "input_tags"} {
		stmts = append(stmts, "ALTER TABLE "+table+" CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
	}
	for _, st := range stmts {
		if _, err := conn.ExecContext(context.Background(), st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	var equal int
	if err := conn.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM tags WHERE `key` = 'team' AND value = 'vision'").Scan(&equal); err != nil {
		t.Fatal(err)
	}
	var exact int
	if err := conn.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM tags WHERE `key` = 'team' AND BINARY value = 'vision'").Scan(&exact); err != nil {
		t.Fatal(err)
	}
	if equal <= exact {
		t.Fatalf("after the conversion 'vision' = 'Vision' should hold: %d rows equal, %d exactly", equal, exact)
	}
}
