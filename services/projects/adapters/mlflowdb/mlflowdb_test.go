package mlflowdb

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
)

// mlflowDB makes a database with the pinned MLflow's own schema.
func mlflowDB(t *testing.T) (string, Pinned) {
	t.Helper()
	ctx := context.Background()
	mlflow := conf.DefaultMlflow()
	pinned, err := ReadPinned(ctx, mlflow)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mlflow.db")
	if out, err := Upgrade(ctx, mlflow, path); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return path, pinned
}

func TestRevisionAndRelocateOnTheRealSchema(t *testing.T) {
	path, pinned := mlflowDB(t)
	ctx := context.Background()
	rev, err := Revision(ctx, path)
	if err != nil || rev != pinned.Head || pinned.Check(rev) != mlflowschema.Current || pinned.Version == "" {
		t.Fatalf("revision %q (%v), pinned %+v", rev, err, pinned)
	}
	db, err := open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage) VALUES
		(10, 'a', '/old/p/artifacts/10', 'active'), (11, 'b', '/old/p/artifacts2/11', 'active'),
		(12, 'c', 'mlflow-artifacts:/12', 'active')`)
	exec(`INSERT INTO runs (run_uuid, experiment_id, artifact_uri, lifecycle_stage, status, source_type) VALUES
		('r1', 10, 'file:///old/p/artifacts/10/r1/artifacts', 'active', 'FINISHED', 'LOCAL')`)
	n, err := Relocate(ctx, path, "/old/p/artifacts/", "/new/q/artifacts")
	if err != nil || n != 2 {
		t.Fatalf("Relocate changed %d values (%v), want 2", n, err)
	}
	want := map[string]string{
		"SELECT artifact_location FROM experiments WHERE experiment_id = 10": "/new/q/artifacts/10",
		"SELECT artifact_location FROM experiments WHERE experiment_id = 11": "/old/p/artifacts2/11",
		"SELECT artifact_location FROM experiments WHERE experiment_id = 12": "mlflow-artifacts:/12",
		"SELECT artifact_uri FROM runs WHERE run_uuid = 'r1'":                "file:///new/q/artifacts/10/r1/artifacts",
	}
	// To the served scheme, from both spellings.
	exec(`INSERT INTO runs (run_uuid, experiment_id, artifact_uri, lifecycle_stage, status, source_type) VALUES
		('r2', 10, '/srv/old/1/r2/artifacts', 'active', 'FINISHED', 'LOCAL'), ('r3', 10, 'file:///srv/old/1/r3/artifacts', 'active', 'FINISHED', 'LOCAL')`)
	if n, err := Relocate(ctx, path, "/srv/old", "mlflow-artifacts:"); err != nil || n != 2 {
		t.Fatalf("Relocate to mlflow-artifacts: changed %d (%v), want 2", n, err)
	}
	want["SELECT artifact_uri FROM runs WHERE run_uuid = 'r2'"] = "mlflow-artifacts:/1/r2/artifacts"
	want["SELECT artifact_uri FROM runs WHERE run_uuid = 'r3'"] = "mlflow-artifacts:/1/r3/artifacts"
	for q, w := range want {
		var got string
		if err := db.QueryRow(q).Scan(&got); err != nil || got != w {
			t.Errorf("%s = %q (%v), want %q", q, got, err, w)
		}
	}
}

// A snapshot taken while a writer commits is a whole database as of one
// commit: it passes SQLite's integrity check and holds whole transactions.
func TestSnapshotWhileWriting(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "live.db")
	w, err := open(src, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Exec("CREATE TABLE m (run INTEGER, step INTEGER, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan error)
	go func() {
		for i := 0; !stop.Load(); i++ {
			tx, err := w.Begin()
			if err != nil {
				done <- err
				return
			}
			for s := 0; s < 10; s++ { // a transaction is always 10 rows
				if _, err := tx.Exec("INSERT INTO m VALUES (?, ?, randomblob(2000))", i, s); err != nil {
					done <- err
					return
				}
			}
			if err := tx.Commit(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for k := 0; k < 5; k++ {
		dst := filepath.Join(dir, "snap"+string(rune('a'+k))+".db")
		if err := Snapshot(context.Background(), src, dst); err != nil {
			t.Fatal(err)
		}
		s, err := sql.Open("sqlite", "file:"+dst+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var ok string
		var rows, partial int
		if err := s.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
			t.Errorf("integrity_check of snapshot %d = %q (%v)", k, ok, err)
		}
		_ = s.QueryRow("SELECT count(*) FROM m").Scan(&rows)
		_ = s.QueryRow("SELECT count(*) FROM (SELECT run FROM m GROUP BY run HAVING count(*) != 10)").Scan(&partial)
		s.Close()
		if partial != 0 {
			t.Errorf("snapshot %d holds %d half transactions", k, partial)
		}
		t.Logf("snapshot %d: %d rows", k, rows)
	}
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
