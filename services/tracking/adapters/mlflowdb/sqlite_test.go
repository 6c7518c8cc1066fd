package mlflowdb

import (
	"database/sql"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite" // the test's writer, "sqlite"
)

// TestSQLiteSessionsAreReadOnlyWithMLflowsLike: whichever SQLite driver
// the build links (sqlite_cgo.go, sqlite_purego.go, each with its own
// DSN syntax), the reader's sessions refuse writes (MLflow is the only
// writer) and match LIKE case-sensitively as MLflow's sessions do, on a
// project folder whose path needs escaping in a URI.
func TestSQLiteSessionsAreReadOnlyWithMLflowsLike(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my project?#1 %20")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := sql.Open("sqlite", "file:"+(&url.URL{Path: DBPath(dir)}).EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE TABLE tags (key TEXT, value TEXT)", "INSERT INTO tags VALUES ('mlflow.runName', 'Big-Run')"} {
		if _, err := w.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	rd := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer rd.Close()
	db, err := rd.open(DBPath(dir))
	if err != nil {
		t.Fatalf("opening %s: %v", DBPath(dir), err)
	}
	for pattern, want := range map[string]int{"Big-%": 1, "big-%": 0, "%RUN": 0, "%Run": 1} {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM tags WHERE value LIKE ?", pattern).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("LIKE %q matched %d rows, want %d (MLflow's SQLite LIKE is case-sensitive)", pattern, n, want)
		}
	}
	if _, err := db.Exec("INSERT INTO tags VALUES ('x', 'y')"); err == nil {
		t.Error("the reader's session wrote to the project's database")
	}
	if _, err := db.Exec("PRAGMA user_version = 7"); err == nil {
		t.Error("the reader's session changed the project's database header")
	}
}
