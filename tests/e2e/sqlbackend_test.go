package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/mysqltest"
	"github.com/mlpanel/mlpanel/pkg/platform/mysqlurl"
	"github.com/mlpanel/mlpanel/pkg/platform/pgtest"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// TestPostgreSQLProject and TestMySQLProject: a panel given a database
// server (Debian's PostgreSQL or MariaDB, started by the test) creates a
// project with that backend, runs its MLflow server on a database of its
// own, the stock client logs runs there through the gateway, the panel's
// run list (filtered, also on values that differ only in case) and
// experiment list answer as MLflow does, export says how to back the
// project up instead, and deleting the project drops the database. The
// main panel, which has no such server, refuses the backend with a 400
// naming the setting.
func TestPostgreSQLProject(t *testing.T) {
	testSQLBackendProject(t, sqlBackend{
		backend: "postgresql", label: "PostgreSQL", setting: "MLPANEL_PROJECT_DB_URL",
		ports: proc.Range{Lo: 15170, Hi: 15174}, gateway: "127.0.0.1:15195",
		start: pgtest.Start,
		configure: func(cfg *stack.Config, server string) {
			cfg.Projects.ProjectDBURL, cfg.Tracking.ProjectDBURL = server, server
		},
		driver: "pgx",
		dsn: func(server, database string) (string, error) {
			u, err := neturl.Parse(server)
			if err == nil && database != "" {
				u.Path = "/" + database
			}
			return u.String(), err
		},
		countDatabases: "SELECT count(*) FROM pg_database WHERE datname = $1",
	})
}

func TestMySQLProject(t *testing.T) {
	testSQLBackendProject(t, sqlBackend{
		backend: "mysql", label: "MySQL", setting: "MLPANEL_PROJECT_MYSQL_URL",
		ports: proc.Range{Lo: 15175, Hi: 15179}, gateway: "127.0.0.1:15197",
		start: mysqltest.Start,
		configure: func(cfg *stack.Config, server string) {
			cfg.Projects.ProjectMySQLURL, cfg.Tracking.ProjectMySQLURL = server, server
		},
		driver:         "mysql",
		dsn:            mysqlurl.DSN,
		countDatabases: "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?",
	})
}

// sqlBackend is a kind of database server a project's runs can live on.
type sqlBackend struct {
	backend, label string // the project's backend and its name in messages
	setting        string // the panel's setting that names the server
	ports          proc.Range
	gateway        string
	start          func(testing.TB) string // the server's URL
	configure      func(cfg *stack.Config, server string)
	driver         string                                        // database/sql's name of the Go driver
	dsn            func(server, database string) (string, error) // "" database: the server's admin one
	countDatabases string                                        // counts the databases of the name given
}

func testSQLBackendProject(t *testing.T, b sqlBackend) {
	r := call(t, http.MethodPost, "/projects", map[string]string{"name": b.backend + "-refused", "backend": b.backend})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Message(), b.setting) {
		t.Fatalf("backend %s without a server: %d %s, want a 400 naming %s", b.backend, r.Status, r.Body, b.setting)
	}

	server := b.start(t)
	cfg := panelCfg
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Deployer.Home = cfg.Home
	cfg.Projects.Ports = b.ports
	cfg.Projects.StopOnExit = true
	cfg.Gateway.Addr = b.gateway
	b.configure(&cfg, server)
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); assertSpec(t, s) })
	do := func(method, path string, body any) response {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, s.URL+path, rd)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	}
	var p struct {
		project
		Backend  string `json:"backend"`
		Database string `json:"database"`
	}
	name := b.backend + "-p"
	r = do(http.MethodPost, "/projects", map[string]string{"name": name, "backend": b.backend})
	expect(t, r, http.StatusCreated)
	r.JSON(t, &p)
	if p.Backend != b.backend || p.Database == "" {
		t.Fatalf("created %s: want backend %s and its database", r.Body, b.backend)
	}
	open := func(database string) *sql.DB {
		dsn, err := b.dsn(server, database)
		if err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open(b.driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	admin := open("")
	databases := func() int {
		var n int
		if err := admin.QueryRow(b.countDatabases, p.Database).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if databases() != 1 {
		t.Fatalf("no database %s on the server", p.Database)
	}
	expect(t, do(http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		do(http.MethodGet, "/projects/"+p.ID, nil).JSON(t, &p)
		if p.Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("project is %s after 3 minutes (last error %q)", p.Status, p.LastError)
		}
		time.Sleep(300 * time.Millisecond)
	}

	python(t, `
import mlflow
mlflow.set_experiment("sweep")
for i in range(40):
    with mlflow.start_run(run_name="r%d" % i):
        mlflow.log_param("lr", ["0.01", "0.1"][i % 2])
        mlflow.log_param("model", ["cnn", "CNN", "mlp"][i % 3])
        mlflow.log_metric("accuracy", i / 40)
`, "MLFLOW_TRACKING_URI="+p.MlflowURI)

	projectDB := open(p.Database)
	var runs int
	if err := projectDB.QueryRow("SELECT count(*) FROM runs").Scan(&runs); err != nil || runs != 40 {
		t.Fatalf("runs in database %s: %d, %v; want the 40 the client logged", p.Database, runs, err)
	}

	// MLflow's own answer, from its server on the same database.
	var exps struct {
		Experiments []struct {
			ID string `json:"experiment_id"`
		} `json:"experiments"`
	}
	resp, err := http.Post(p.MlflowURI+"/api/2.0/mlflow/experiments/search", "application/json", strings.NewReader(`{"max_results": 10}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&exps)
	resp.Body.Close()
	var expIDs []string
	for _, e := range exps.Experiments {
		expIDs = append(expIDs, e.ID)
	}
	for _, c := range []struct {
		filter string
		total  int
	}{
		{"metrics.accuracy > 0.5 and params.lr = '0.01'", 9},
		// 'cnn' and 'CNN' are two values to MLflow (MySQL's default
		// collations would call them equal).
		{"params.model = 'CNN' and metrics.accuracy < 0.9", 12},
	} {
		r = do(http.MethodGet, "/runs?project_id="+name+"&_start=0&_end=5&filter="+neturl.QueryEscape(c.filter), nil)
		expect(t, r, http.StatusOK)
		var page []struct {
			ID string `json:"id"`
		}
		r.JSON(t, &page)
		body, _ := json.Marshal(map[string]any{"experiment_ids": expIDs, "filter": c.filter, "max_results": 100})
		resp, err = http.Post(p.MlflowURI+"/api/2.0/mlflow/runs/search", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			Runs []struct {
				Info struct {
					RunID string `json:"run_id"`
				} `json:"info"`
			} `json:"runs"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&want)
		resp.Body.Close()
		if total, _ := strconv.Atoi(r.Header.Get("X-Total-Count")); total != c.total || len(want.Runs) != c.total || len(page) != 5 {
			t.Fatalf("%s: X-Total-Count %q, %d on the page, MLflow finds %d; want %d, 5, %d", c.filter, r.Header.Get("X-Total-Count"), len(page), len(want.Runs), c.total, c.total)
		}
		for i := range page {
			if page[i].ID != want.Runs[i].Info.RunID {
				t.Fatalf("%s: run %d of the page is %s, MLflow's is %s", c.filter, i, page[i].ID, want.Runs[i].Info.RunID)
			}
		}
	}
	r = do(http.MethodGet, "/experiments?project_id="+name, nil)
	expect(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), `"run_count":40`) {
		t.Errorf("experiment sweep: %s, want its 40 runs counted", r.Body)
	}

	expect(t, do(http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
	deadline = time.Now().Add(time.Minute)
	for {
		do(http.MethodGet, "/projects/"+p.ID, nil).JSON(t, &p)
		if p.Status == "terminated" || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	r = do(http.MethodGet, "/projects/"+p.ID+"/export", nil)
	if r.Status != http.StatusConflict || !strings.Contains(r.Message(), b.label) {
		t.Errorf("export of a %s project: %d %s, want a 409 that says why", b.label, r.Status, r.Body)
	}
	projectDB.Close()
	expect(t, do(http.MethodDelete, "/projects/"+p.ID, nil), http.StatusOK)
	if databases() != 0 {
		t.Errorf("database %s outlived its project", p.Database)
	}
}
