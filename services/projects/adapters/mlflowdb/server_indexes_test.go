package mlflowdb

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
	"github.com/mlpanel/mlpanel/pkg/platform/mysqltest"
	"github.com/mlpanel/mlpanel/pkg/platform/mysqlurl"
	"github.com/mlpanel/mlpanel/pkg/platform/pgtest"
	"github.com/mlpanel/mlpanel/services/projects/adapters/mysqldb"
	"github.com/mlpanel/mlpanel/services/projects/adapters/pgdb"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// serverDatabases makes and indexes project databases on one server.
type serverDatabases interface {
	Indexer
	Create(ctx context.Context, name string) error
}

// A project database on a PostgreSQL or MariaDB server gets the panel's
// indexes before a start once MLflow has made its tables there, once
// however often it starts; before that (the first start) nothing is
// written to it.
func TestIndexesOnDatabaseServers(t *testing.T) {
	mlflow, err := filepath.Abs(filepath.Join("..", "..", "..", "..", ".venv", "bin", "mlflow"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mlflow); err != nil {
		t.Fatalf("no .venv/bin/mlflow (%v): run `make venv`", err)
	}
	for _, c := range []struct {
		backend domain.Backend
		start   func(testing.TB) string
		dbs     func(server string) serverDatabases
		open    func(server, name string) (*sql.DB, string) // the database and MLflow's URI of it
		d       mlflowschema.Dialect
	}{
		{domain.BackendPostgreSQL, func(t testing.TB) string { return pgtest.Start(t) },
			func(s string) serverDatabases {
				return pgdb.Databases{URL: s}
			},
			func(server, name string) (*sql.DB, string) {
				u, _ := url.Parse(server)
				u.Path = "/" + name
				db, err := sql.Open("pgx", u.String())
				if err != nil {
					t.Fatal(err)
				}
				uri, _ := pgdb.DatabaseURL(server, name)
				return db, uri
			}, mlflowschema.Postgres},
		{domain.BackendMySQL, func(t testing.TB) string { return mysqltest.Start(t) },
			func(s string) serverDatabases {
				return mysqldb.Databases{URL: s}
			},
			func(server, name string) (*sql.DB, string) {
				dsn, _ := mysqlurl.DSN(server, name)
				db, err := sql.Open("mysql", dsn)
				if err != nil {
					t.Fatal(err)
				}
				uri, _ := mysqlurl.SQLAlchemyURL(server, name)
				return db, uri
			}, mlflowschema.MySQL},
	} {
		t.Run(string(c.backend), func(t *testing.T) {
			ctx := context.Background()
			server := c.start(t)
			dbs := c.dbs(server)
			const name = "mlpanel_project_9_ix"
			if err := dbs.Create(ctx, name); err != nil {
				t.Fatal(err)
			}
			db, uri := c.open(server, name)
			defer db.Close()
			objects := func() (tables, indexes int) {
				t.Helper()
				q := map[mlflowschema.Dialect][2]string{
					mlflowschema.Postgres: {"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()",
						"SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE 'mlpanel_%'"},
					mlflowschema.MySQL: {"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()",
						"SELECT COUNT(DISTINCT index_name) FROM information_schema.statistics WHERE table_schema = DATABASE() AND index_name LIKE 'mlpanel_%'"},
				}[c.d]
				if err := db.QueryRow(q[0]).Scan(&tables); err != nil {
					t.Fatal(err)
				}
				if err := db.QueryRow(q[1]).Scan(&indexes); err != nil {
					t.Fatal(err)
				}
				return tables, indexes
			}
			u := &Upgrading{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Indexers: map[domain.Backend]Indexer{c.backend: dbs}}
			p := domain.Project{ID: "9", Path: t.TempDir(), Backend: c.backend, Database: name}
			if err := u.Prepare(p); err != nil {
				t.Fatalf("before MLflow made its tables: %v", err)
			}
			if tables, indexes := objects(); tables != 0 || indexes != 0 {
				t.Fatalf("before MLflow made its tables: %d tables and %d indexes appeared", tables, indexes)
			}
			// MLflow's own code makes its tables, as its server does on the
			// first start.
			if out, err := exec.Command(mlflow, "db", "upgrade", uri).CombinedOutput(); err != nil {
				t.Fatalf("mlflow db upgrade: %v\n%s", err, out)
			}
			for range 2 {
				if err := u.Prepare(p); err != nil {
					t.Fatal(err)
				}
			}
			if _, indexes := objects(); indexes != len(mlflowschema.Indexes) {
				t.Fatalf("%d panel indexes after two starts, want %d", indexes, len(mlflowschema.Indexes))
			}
			if _, err := os.Stat(filepath.Join(p.Path, "mlflow.db")); err == nil {
				t.Error("a project on a database server got an SQLite file too")
			}
		})
	}
}
