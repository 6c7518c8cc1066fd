package mlflowdb

import (
	"bytes"
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
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("the SQL path fell back to REST for the whole database:\n%s", logs.String())
	}
}
