package adapters

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/pgtest"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/projects/adapters/pgdb"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// A project that has run before never starts on a missing database: that
// would show it empty. A new project (no database yet) does start.
func TestStartRefusesAVanishedDatabase(t *testing.T) {
	dir := t.TempDir()
	// No mlflow at this path: a start that gets as far as launching fails
	// with an ordinary, retryable error.
	m := NewMLflowServers(filepath.Join(dir, "no-mlflow"), "127.0.0.1", 1, false)
	p := domain.Project{ID: "1", Name: "alpha", Path: filepath.Join(dir, "alpha"), Port: 1}

	_, err := m.Start(p)
	if err == nil || reconcile.IsTerminal(err) {
		t.Fatalf("first start of a new project: %v, want it launched (and fail only for the missing executable)", err)
	}
	p.RanBefore = true
	_, err = m.Start(p)
	if !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), filepath.Join(p.Path, "mlflow.db")) || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("start after the database vanished: %v, want a terminal error naming mlflow.db and the way back", err)
	}
	if err := os.WriteFile(filepath.Join(p.Path, "mlflow.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = m.Start(p); err == nil || reconcile.IsTerminal(err) {
		t.Fatalf("start with the database back: %v, want it launched", err)
	}
}

// A project with backend postgresql runs its MLflow server on its own
// database of MLPANEL_PROJECT_DB_URL's server: what a client logs lands
// there, nothing in the project's folder, and the password of the
// address never shows on the server's command line. Without the setting
// the start fails for good, naming it.
func TestServerKeepsItsRunsInPostgreSQL(t *testing.T) {
	server := pgtest.Start(t)
	ctx := context.Background()
	dbs := pgdb.Databases{URL: server}
	const name = "mlpanel_project_7_test"
	if err := dbs.Create(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dbs.Drop(context.Background(), name) })
	mlflow, err := filepath.Abs(filepath.Join("..", "..", "..", ".venv", "bin", "mlflow"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mlflow); err != nil {
		t.Fatalf("no .venv/bin/mlflow (%v): run `make venv`", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := domain.Project{ID: "7", Name: "pg", Path: t.TempDir(), Port: port, Backend: domain.BackendPostgreSQL, Database: name,
		InternalURL: fmt.Sprintf("http://127.0.0.1:%d/projects/7/mlflow", port)}

	bare := NewMLflowServers(mlflow, "127.0.0.1", 1, false)
	if _, err := bare.Start(p); !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), "MLPANEL_PROJECT_DB_URL") {
		t.Fatalf("start without MLPANEL_PROJECT_DB_URL: %v, want a terminal error naming it", err)
	}

	m := NewMLflowServers(mlflow, "127.0.0.1", 1, false)
	// Trust authentication ignores the password; it is there to be hidden.
	m.ProjectDBURL = strings.Replace(server, "mlpanel@", "mlpanel:s3cret-pw@", 1)
	pr, err := m.Start(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pr.Stop(5 * time.Second) })
	deadline := time.Now().Add(2 * time.Minute)
	for !m.Healthy(ctx, p) {
		if time.Now().After(deadline) || !pr.Alive() {
			log, _ := os.ReadFile(m.LogFile(p))
			t.Fatalf("the server did not answer /health:\n%s", log)
		}
		time.Sleep(300 * time.Millisecond)
	}
	resp, err := http.Post(p.InternalURL+"/api/2.0/mlflow/experiments/create", "application/json", strings.NewReader(`{"name": "in-postgres"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("experiments/create: HTTP %d", resp.StatusCode)
	}
	u, _ := url.Parse(server)
	u.Path = "/" + name
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM experiments WHERE name = 'in-postgres'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the experiment in database %s: %d rows, %v", name, n, err)
	}
	if _, err := os.Stat(filepath.Join(p.Path, "mlflow.db")); err == nil {
		t.Error("a PostgreSQL project's server made an mlflow.db too")
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pr.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), "s3cret-pw") || !strings.Contains(string(cmdline), "server") {
		t.Errorf("the server's command line shows the database password: %q", cmdline)
	}
}

// A project with backend mysql hands MLflow its database through PyMySQL
// in the environment (the password never on the command line); without
// MLPANEL_PROJECT_MYSQL_URL the start fails for good, naming it. The
// server itself runs on MariaDB in the tracking service's differential
// test and in tests/e2e.
func TestMySQLProjectsServerFindsItsDatabase(t *testing.T) {
	p := domain.Project{ID: "8", Name: "my", Path: t.TempDir(), Backend: domain.BackendMySQL, Database: "mlpanel_project_8_ab"}
	m := NewMLflowServers("/nonexistent/mlflow", "127.0.0.1", 1, false)
	if _, _, err := m.backendStore(p); !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), "MLPANEL_PROJECT_MYSQL_URL") {
		t.Fatalf("without MLPANEL_PROJECT_MYSQL_URL: %v, want a terminal error naming it", err)
	}
	m.ProjectDBURL = "postgresql://pg@db:5432/postgres" // the other backend's server is not this one's
	m.ProjectMySQLURL = "mysql://ml:s3cret-pw@db:3306/"
	args, env, err := m.backendStore(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(args) != 0 || len(env) != 1 || env[0] != "MLFLOW_BACKEND_STORE_URI=mysql+pymysql://ml:s3cret-pw@db:3306/mlpanel_project_8_ab?charset=utf8mb4" {
		t.Fatalf("args %q, env %q", args, env)
	}
}
