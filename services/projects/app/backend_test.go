package app

import (
	"context"
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/mysqltest"
	"github.com/mlpanel/mlpanel/pkg/platform/mysqlurl"
	"github.com/mlpanel/mlpanel/pkg/platform/pgtest"
	"github.com/mlpanel/mlpanel/services/projects/adapters/mysqldb"
	"github.com/mlpanel/mlpanel/services/projects/adapters/pgdb"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// Without MLPANEL_PROJECT_DB_URL a PostgreSQL project is a 400 that names
// the setting, without MLPANEL_PROJECT_MYSQL_URL a MySQL one too, an
// unknown backend a 400 that names the choices, and
// neither leaves a record or a folder behind.
func TestBackendIsCheckedBeforeAnythingIsMade(t *testing.T) {
	s, _, _ := newTestService(t, 5)
	ctx := context.Background()
	for backend, want := range map[string]string{"postgresql": "MLPANEL_PROJECT_DB_URL", "mysql": "MLPANEL_PROJECT_MYSQL_URL", "mariadb": "or mysql (a database on the MySQL/MariaDB server", "SQLite": "use sqlite"} {
		_, err := s.Create(ctx, CreateInput{Name: "p", Backend: backend})
		if events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), want) {
			t.Errorf("backend %q: %v, want a 400 saying %q", backend, err, want)
		}
	}
	if all, _ := s.store.All(ctx); len(all) != 0 {
		t.Errorf("refused creates left records: %+v", all)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.cfg.Home, "projects")); len(entries) != 0 {
		t.Errorf("refused creates left folders: %v", entries)
	}
	p, err := s.Create(ctx, CreateInput{Name: "lite", Backend: "sqlite"})
	if err != nil || p.Backend != domain.BackendSQLite || p.Database != "" {
		t.Fatalf("sqlite project: %+v, %v", p, err)
	}
}

// A PostgreSQL project gets a database of its own on the configured
// server when it is created, and loses it when it is deleted; export and
// clone refuse it with a 409 that says why.
func TestPostgreSQLProjectHasItsOwnDatabase(t *testing.T) {
	url := pgtest.Start(t)
	s, _, _ := newTestService(t, 5)
	s.cfg.Databases = map[domain.Backend]Databases{domain.BackendPostgreSQL: pgdb.Databases{URL: url}}
	ctx := context.Background()
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	exists := func(name string) bool {
		var n int
		if err := admin.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	p, err := s.Create(ctx, CreateInput{Name: "pg-a", Backend: "postgresql"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := s.Create(ctx, CreateInput{Name: "pg-b", Backend: " postgresql "})
	if err != nil {
		t.Fatal(err)
	}
	if p.Backend != domain.BackendPostgreSQL || p.Database == "" || p.Database == q.Database || !exists(p.Database) || !exists(q.Database) {
		t.Fatalf("created %+v and %+v: want two databases of their own", p, q)
	}
	if got, _ := s.Find(ctx, "pg-a"); got.Database != p.Database {
		t.Fatalf("the record lost the database name: %+v", got)
	}
	m := NewMover(s, nil, "")
	if _, err := m.Export(ctx, p.ID); events.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Errorf("export of a PostgreSQL project: %v, want a 409 that says why", err)
	}
	if _, err := m.Clone(ctx, p.ID, CloneInput{Name: "copy"}); events.StatusOf(err) != http.StatusConflict {
		t.Errorf("clone of a PostgreSQL project: %v, want 409", err)
	}
	if _, err := m.CreateOrAdopt(ctx, CreateInput{Name: "adopted", Backend: "postgresql", Source: &Source{BackendStoreURI: "sqlite:////x/mlflow.db", ArtifactRoot: "/x"}}, false); events.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("adopting into PostgreSQL: %v, want 400", err)
	}

	if _, err := s.Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if exists(p.Database) {
		t.Errorf("database %s outlived its project", p.Database)
	}
	if !exists(q.Database) {
		t.Errorf("deleting one project dropped the database of another")
	}
}

// A MySQL project gets a database of its own on the MySQL/MariaDB server
// when it is created, and loses it when it is deleted; a PostgreSQL
// project is still refused when only MySQL is configured; export refuses
// it with a 409 that says why.
func TestMySQLProjectHasItsOwnDatabase(t *testing.T) {
	server := mysqltest.Start(t)
	s, _, _ := newTestService(t, 5)
	s.cfg.Databases = map[domain.Backend]Databases{domain.BackendMySQL: mysqldb.Databases{URL: server}}
	ctx := context.Background()
	dsn, err := mysqlurl.DSN(server, "")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	exists := func(name string) bool {
		var n int
		if err := admin.QueryRow("SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	if _, err := s.Create(ctx, CreateInput{Name: "pg", Backend: "postgresql"}); events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "MLPANEL_PROJECT_DB_URL") {
		t.Errorf("postgresql with only MySQL configured: %v, want a 400 naming MLPANEL_PROJECT_DB_URL", err)
	}
	p, err := s.Create(ctx, CreateInput{Name: "my-a", Backend: "mysql"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := s.Create(ctx, CreateInput{Name: "my-b", Backend: "mysql"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Backend != domain.BackendMySQL || p.Database == "" || p.Database == q.Database || !exists(p.Database) || !exists(q.Database) {
		t.Fatalf("created %+v and %+v: want two databases of their own", p, q)
	}
	var charset, collation string
	if err := admin.QueryRow("SELECT default_character_set_name, default_collation_name FROM information_schema.schemata WHERE schema_name = ?", p.Database).Scan(&charset, &collation); err != nil || charset != "utf8mb4" || collation != "utf8mb4_bin" {
		t.Errorf("database %s has character set %q, collation %q (%v), want utf8mb4 where case counts (utf8mb4_bin)", p.Database, charset, collation, err)
	}
	m := NewMover(s, nil, "")
	if _, err := m.Export(ctx, p.ID); events.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "MySQL") {
		t.Errorf("export of a MySQL project: %v, want a 409 that says why", err)
	}
	if _, err := s.Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if exists(p.Database) {
		t.Errorf("database %s outlived its project", p.Database)
	}
	if !exists(q.Database) {
		t.Errorf("deleting one project dropped the database of another")
	}
}
