package mlflowschema

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"
)

// TestHeadIsThePinnedMLflowHead derives the head of the pinned MLflow's
// migration chain from the installed package: a new pin that moves the
// schema fails here until the direct reads are checked against it.
func TestHeadIsThePinnedMLflowHead(t *testing.T) {
	wd, _ := os.Getwd()
	root := filepath.Join(wd, "..", "..", "..")
	files, _ := filepath.Glob(filepath.Join(root, ".venv", "lib", "python*", "site-packages", "mlflow", "store", "db_migrations", "versions", "*.py"))
	if len(files) == 0 {
		t.Fatal("no MLflow migrations under .venv: run `make venv`")
	}
	revRe := regexp.MustCompile(`(?m)^revision\s*=\s*"(\w+)"`)
	downRe := regexp.MustCompile(`(?m)^down_revision\s*=\s*(.*)$`)
	idRe := regexp.MustCompile(`"(\w+)"`)
	revs, downs := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := revRe.FindSubmatch(b); m != nil {
			revs[string(m[1])] = true
		}
		if m := downRe.FindSubmatch(b); m != nil {
			for _, d := range idRe.FindAllSubmatch(m[1], -1) {
				downs[string(d[1])] = true
			}
		}
	}
	var heads []string
	for r := range revs {
		if !downs[r] {
			heads = append(heads, r)
		}
	}
	if len(heads) != 1 || heads[0] != Head || !Readable(heads[0]) {
		t.Errorf("the pinned MLflow's schema head is %v; Head is %s: check the direct SQL reads against the new schema, then update it", heads, Head)
	}
}

func TestCheck(t *testing.T) {
	known := []string{"c", "b", "a"}
	for rev, want := range map[string]Status{"": Empty, "c": Current, "a": Older, "z": Unknown} {
		if got := Check(rev, "c", known); got != want {
			t.Errorf("Check(%q) = %v, want %v", rev, got, want)
		}
	}
}

func newDB(t testing.TB, rev string) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mlflow.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{"CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)", "INSERT INTO alembic_version VALUES ('" + rev + "')"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return path, db
}

// TestCacheReadsAgainOnlyWhenTheFileChanges: repeated calls on an
// unchanged database do not open it; a migration (a write to the file) is
// seen on the next call.
func TestCacheReadsAgainOnlyWhenTheFileChanges(t *testing.T) {
	path, db := newDB(t, "a")
	var reads atomic.Int32
	c := &Cache{ReadFile: func(ctx context.Context, p string) (string, error) {
		reads.Add(1)
		return ReadFile(ctx, p)
	}}
	ctx := context.Background()
	for i := range 5 {
		rev, err := c.Revision(ctx, path)
		if err != nil || rev != "a" {
			t.Fatalf("call %d: %q, %v", i, rev, err)
		}
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("5 calls on an unchanged database opened it %d times, want 1", n)
	}
	if _, err := db.Exec("UPDATE alembic_version SET version_num = 'b'"); err != nil {
		t.Fatal(err)
	}
	if rev, err := c.Revision(ctx, path); err != nil || rev != "b" {
		t.Fatalf("after a migration: %q, %v; want b", rev, err)
	}
	// Replaced by another file (a restore from backup): read again too.
	other, _ := newDB(t, "c")
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if rev, err := c.Revision(ctx, path); err != nil || rev != "c" {
		t.Fatalf("after the file was replaced: %q, %v; want c", rev, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revision(ctx, path); err == nil {
		t.Fatal("a removed database still answered from the cache")
	}
}

func TestReadFileOfAnEmptyDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mlflow.db")
	db, _ := sql.Open("sqlite", "file:"+path)
	if _, err := db.Exec("CREATE TABLE x (a INT)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if rev, err := ReadFile(context.Background(), path); err != nil || rev != "" {
		t.Fatalf("uninitialised database: %q, %v; want \"\"", rev, err)
	}
}
