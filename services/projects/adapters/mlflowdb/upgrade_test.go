package mlflowdb

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// legacyPython is MLflow 2's python from the virtualenv the e2e suite
// caches (tests/e2e/upgrade_test.go builds it the same way).
func legacyPython(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "mlpanel", "mlflow-2.22.1")
	if _, err := os.Stat(filepath.Join(dir, ".installed")); err != nil {
		_ = os.RemoveAll(dir)
		for _, s := range [][]string{
			{filepath.Join(filepath.Dir(conf.DefaultMlflow()), "python"), "-m", "venv", dir},
			{filepath.Join(dir, "bin", "pip"), "install", "-q", "mlflow-skinny==2.22.1", "sqlalchemy>=1.4,<2.1", "alembic<2,!=1.10.0"},
		} {
			if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", s, err, out)
			}
		}
		_ = os.WriteFile(filepath.Join(dir, ".installed"), nil, 0o644)
	}
	return filepath.Join(dir, "bin", "python")
}

// A migration MLflow cannot finish restores the database as it was and
// names MLflow's error; one it can finish reaches the pinned head and
// keeps a backup.
func TestUpgradeRestoresWhenMLflowFails(t *testing.T) {
	ctx := context.Background()
	py := legacyPython(t)
	u := &Upgrading{Tool: &Tool{Mlflow: conf.DefaultMlflow()}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	pinned, err := u.Tool.Pinned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, sql string
		fails     bool
	}{{"ok", "", false}, {"bad", "CREATE TABLE issues (x INTEGER)", true}} {
		db := filepath.Join(t.TempDir(), "mlflow.db")
		script := `import sys; from mlflow.tracking import MlflowClient; c = MlflowClient("sqlite:///" + sys.argv[1]); c.create_experiment("legacy")`
		if out, err := exec.Command(py, "-c", script, db).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if c.sql != "" {
			h, _ := sql.Open("sqlite", db)
			if _, err := h.Exec(c.sql); err != nil {
				t.Fatal(err)
			}
			h.Close()
		}
		// An older panel indexed it: MLflow's migration must still run.
		if err := EnsureIndexes(ctx, db); err != nil {
			t.Fatal(err)
		}
		old, _ := Revision(ctx, db)

		err := u.Prepare(domain.Project{ID: c.name, Path: filepath.Dir(db), RanBefore: true})
		rev, _ := Revision(ctx, db)
		backups, _ := filepath.Glob(db + ".before-*")
		switch {
		case c.fails && (err == nil || !strings.Contains(err.Error(), "table issues already exists") || !strings.Contains(err.Error(), "restored")):
			t.Errorf("%s: err %v, want MLflow's error and the restore", c.name, err)
		case c.fails && rev != old:
			t.Errorf("%s: revision %s after the restore, want %s", c.name, rev, old)
		case !c.fails && (err != nil || rev != pinned.Head):
			t.Errorf("%s: err %v, revision %s, want %s", c.name, err, rev, pinned.Head)
		}
		if ix := panelIndexes(t, db); len(ix) != len(mlflowschema.Indexes) {
			t.Errorf("%s: indexes %v after the migration, want every one of mlflowschema.Indexes", c.name, ix)
		}
		if len(backups) != 1 {
			t.Errorf("%s: backups %v, want one", c.name, backups)
		}
		if c.fails {
			var n int
			h, _ := sql.Open("sqlite", db)
			_ = h.QueryRow("SELECT count(*) FROM experiments WHERE name = 'legacy'").Scan(&n)
			var ok string
			_ = h.QueryRow("PRAGMA integrity_check").Scan(&ok)
			h.Close()
			if n != 1 || ok != "ok" {
				t.Errorf("restored database: %d legacy experiments, integrity %q", n, ok)
			}
		}
	}
}

// panelIndexes are the panel's indexes the database at path has.
func panelIndexes(t *testing.T, path string) []string {
	t.Helper()
	h, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var names []string
	for _, ix := range mlflowschema.Indexes {
		var n string
		if err := h.QueryRow("SELECT name FROM sqlite_master WHERE type = 'index' AND name = ? AND tbl_name = ?", ix.Name, ix.Table).Scan(&n); err == nil {
			names = append(names, n)
		}
	}
	return names
}
