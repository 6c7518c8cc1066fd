// Package mlflowdb works on copies of a project's MLflow SQLite database:
// consistent snapshots of a live one, its schema revision, and moving the
// artifact locations it records. MLflow stays the only writer of a live
// database; everything written here is a copy no server uses yet.
package mlflowdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // pure Go, already in the module graph through FerretDB

	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
)

func open(path string, readOnly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(30000)")
	if readOnly {
		q.Set("mode", "ro")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// Snapshot writes a consistent copy of the database at src to dst while
// its server keeps writing: VACUUM INTO reads inside one transaction, so
// the copy is the database as of one commit, never a torn file.
func Snapshot(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("snapshot of %s: %w", src, err)
	}
	db, err := open(src, true)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("snapshot of %s: %w", src, err)
	}
	return nil
}

// Revision is the database's alembic schema revision ("" for a database
// MLflow never initialised).
func Revision(ctx context.Context, path string) (string, error) {
	return mlflowschema.ReadFile(ctx, path)
}

// locations are the columns where MLflow records where artifacts live
// (the pinned MLflow's dbmodels). A column an older schema lacks is skipped.
var locations = []struct{ table, column, where string }{
	{"experiments", "artifact_location", ""},
	{"runs", "artifact_uri", ""},
	{"logged_models", "artifact_location", ""},
	{"model_versions", "source", ""},
	{"model_versions", "storage_location", ""},
	{"trace_tags", "value", "key = 'mlflow.artifactLocation'"},
}

// Relocate rewrites every artifact location under the folder from (in
// the plain and the file:// spelling) to the same place under to, a
// folder or a URI prefix such as "mlflow-artifacts:". Locations
// of the mlflow-artifacts: scheme are relative to the serving server and
// stay as they are. It reports how many values changed.
func Relocate(ctx context.Context, path, from, to string) (int64, error) {
	db, err := open(path, false)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("relocating artifacts in %s: %w", path, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	from, to = strings.TrimRight(from, "/"), strings.TrimRight(to, "/")
	toFile := "file://" + to
	if strings.Contains(to, ":") { // a URI such as mlflow-artifacts: stays itself
		toFile = to
	}
	pairs := [][2]string{{"file://" + from, toFile}, {from, to}}
	var changed int64
	for _, l := range locations {
		ok, err := hasColumn(ctx, tx, l.table, l.column)
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		for _, p := range pairs {
			// Only whole path segments: /p/1/artifacts must not match /p/1/artifacts2.
			q := fmt.Sprintf(`UPDATE %[1]s SET %[2]s = ?2 || substr(%[2]s, length(?1) + 1)
				WHERE (%[2]s = ?1 OR substr(%[2]s, 1, length(?1) + 1) = ?1 || '/')`, l.table, l.column)
			if l.where != "" {
				q += " AND " + l.where
			}
			res, err := tx.ExecContext(ctx, q, p[0], p[1])
			if err != nil {
				return 0, fmt.Errorf("relocating %s.%s: %w", l.table, l.column, err)
			}
			n, _ := res.RowsAffected()
			changed += n
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("relocating artifacts in %s: %w", path, err)
	}
	return changed, nil
}

func hasColumn(ctx context.Context, tx *sql.Tx, table, column string) (bool, error) {
	rows, err := tx.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		return false, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return false, err
		}
		if name == column {
			return true, nil
		}
	}
	return false, rows.Err()
}

// Pinned is what the panel's own MLflow is: its version and the schema
// revisions its migrations know, newest first.
type Pinned struct {
	Version   string   `json:"version"`
	Head      string   `json:"head"`
	Revisions []string `json:"revisions"`
}

// Check is what a database at rev means to the pinned MLflow.
func (p Pinned) Check(rev string) mlflowschema.Status {
	return mlflowschema.Check(rev, p.Head, p.Revisions)
}

// pinnedScript asks MLflow's own alembic scripts, the source of truth,
// rather than a list kept here.
const pinnedScript = `
import json, os, mlflow
from alembic.script import ScriptDirectory
d = os.path.join(os.path.dirname(mlflow.__file__), "store", "db_migrations")
s = ScriptDirectory(d)
print(json.dumps({"version": mlflow.__version__, "head": s.get_current_head(),
                  "revisions": [r.revision for r in s.walk_revisions()]}))
`

// ReadPinned asks the python beside the mlflow executable.
func ReadPinned(ctx context.Context, mlflow string) (Pinned, error) {
	python := filepath.Join(filepath.Dir(mlflow), "python")
	out, err := exec.CommandContext(ctx, python, "-c", pinnedScript).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return Pinned{}, fmt.Errorf("asking %s for MLflow's version and schema revisions: %w", python, err)
	}
	var p Pinned
	if err := jsonUnmarshal(out, &p); err != nil {
		return Pinned{}, fmt.Errorf("reading MLflow's version and schema revisions: %w", err)
	}
	return p, nil
}

// Upgrade runs MLflow's own migration on the database at path and
// returns its output.
func Upgrade(ctx context.Context, mlflow, path string) (string, error) {
	out, err := exec.CommandContext(ctx, mlflow, "db", "upgrade", "sqlite:///"+path).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("mlflow db upgrade: %w", err)
	}
	return string(out), nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
