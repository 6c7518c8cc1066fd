package mlflowschema

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

func indexCount(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'mlpanel_%'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The indexes come once however often a start adds them, go for a
// migration, and never land on a database MLflow has not made yet.
func TestEnsureAndDropIndexes(t *testing.T) {
	ctx := context.Background()
	_, db := newDB(t, Head)
	if _, err := db.Exec("CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY, experiment_id INTEGER, lifecycle_stage VARCHAR(20), start_time BIGINT)"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := EnsureIndexes(ctx, db, SQLite); err != nil {
			t.Fatal(err)
		}
	}
	if n := indexCount(t, db); n != len(Indexes) {
		t.Fatalf("%d panel indexes after two starts, want %d", n, len(Indexes))
	}
	var detail string
	var id, parent, unused int
	err := db.QueryRow("EXPLAIN QUERY PLAN SELECT run_uuid FROM runs WHERE experiment_id IN (1) AND lifecycle_stage IN ('active') ORDER BY start_time DESC, run_uuid LIMIT 10").Scan(&id, &parent, &unused, &detail)
	if err != nil {
		t.Fatal(err)
	}
	if want := "SCAN runs USING COVERING INDEX " + Indexes[0].Name; detail != want {
		t.Errorf("MLflow's default search plans %q, want %q (no sort of the project)", detail, want)
	}
	for range 2 {
		if err := DropIndexes(ctx, db, SQLite); err != nil {
			t.Fatal(err)
		}
	}
	if n := indexCount(t, db); n != 0 {
		t.Fatalf("%d panel indexes after the drop", n)
	}

	empty, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "mlflow.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if err := EnsureIndexes(ctx, empty, SQLite); err != nil {
		t.Fatalf("a database MLflow never initialised: %v", err)
	}
	var tables int
	_ = empty.QueryRow("SELECT COUNT(*) FROM sqlite_master").Scan(&tables)
	if tables != 0 {
		t.Fatalf("a database MLflow never initialised got %d schema objects", tables)
	}
}
