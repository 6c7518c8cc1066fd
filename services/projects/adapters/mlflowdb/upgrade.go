package mlflowdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/adapters"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// UpgradeTimeout bounds one migration; MLflow's take seconds to minutes.
const UpgradeTimeout = 10 * time.Minute

// Upgrading starts tracking servers like Servers, but first brings a
// database at an older schema revision to the pinned MLflow's with
// MLflow's own migration, behind a backup: newer MLflow releases refuse
// an old schema, and a migration that fails halfway must not leave a
// database neither version can open.
type Upgrading struct {
	adapters.Servers
	Tool *Tool
	Log  *slog.Logger
	// TemplateDir, when set, holds an empty database MLflow made once per
	// schema head (`mlflow db upgrade` on nothing, as the server does on
	// its first start). A new project starts from a copy, which saves
	// MLflow's seconds of creating every table on each first start.
	TemplateDir string
	// Indexers add the panel's indexes to the databases of projects on a
	// database server, by backend (pgdb.Databases, mysqldb.Databases).
	Indexers map[domain.Backend]Indexer

	templateMu sync.Mutex
}

// Indexer adds the panel's indexes (mlflowschema.Indexes) to a project
// database on a database server, once MLflow has made its tables there.
type Indexer interface {
	Index(ctx context.Context, database string) error
}

// Start migrates when needed, then starts the server. A failed migration
// restores the backup and is returned with MLflow's log, so the project
// shows it as its last error.
func (u *Upgrading) Start(p domain.Project) (*proc.Process, error) {
	if err := u.Prepare(p); err != nil {
		return nil, err
	}
	return u.Servers.Start(p)
}

// Prepare brings the database of p where a server of the pinned MLflow
// can open it: a copy of the template for a new project, a migration
// for an old one. A runtime that starts servers elsewhere (Nomad) runs
// it before each start, as Start does.
func (u *Upgrading) Prepare(p domain.Project) error {
	ctx, cancel := context.WithTimeout(context.Background(), UpgradeTimeout)
	defer cancel()
	if p.OnServer() {
		// MLflow's server makes and migrates these itself; the indexes
		// come from the second start on (a wake counts), once its tables
		// exist.
		if ix := u.Indexers[p.Backend]; ix != nil {
			u.indexed(p, ix.Index(ctx, p.Database))
		}
		return nil
	}
	db := filepath.Join(p.Path, "mlflow.db")
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) && !p.RanBefore && u.TemplateDir != "" {
		// Never for a project that ran before: its missing database is a
		// loss that Servers.Start reports, not an empty project.
		if err := u.fromTemplate(ctx, db); err != nil {
			return err
		}
	}
	if err := u.migrate(ctx, db); err != nil {
		return err
	}
	u.indexed(p, EnsureIndexes(ctx, db))
	return nil
}

// indexed reports a failure to add the panel's indexes. They only make
// reads faster: a database that cannot take them (a full disk) still
// starts, and its searches stay right.
func (u *Upgrading) indexed(p domain.Project, err error) {
	if err != nil {
		u.Log.Warn("the project's database starts without the panel's indexes: its searches stay correct but sort every run", "project", p.ID, "err", err)
	}
}

// fromTemplate puts an empty database at the pinned schema head at db.
func (u *Upgrading) fromTemplate(ctx context.Context, db string) error {
	pinned, err := u.Tool.Pinned(ctx)
	if err != nil {
		return err
	}
	tpl := filepath.Join(u.TemplateDir, fmt.Sprintf("empty-mlflow-%s-%s.db", pinned.Version, pinned.Head))
	u.templateMu.Lock()
	if _, err := os.Stat(tpl); errors.Is(err, os.ErrNotExist) {
		err = u.makeTemplate(ctx, tpl)
		if err != nil {
			u.templateMu.Unlock()
			return err
		}
	}
	u.templateMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		return err
	}
	tmp := db + ".new"
	if err := copyFile(tpl, tmp); err != nil {
		return fmt.Errorf("copying the empty MLflow database %s: %w", tpl, err)
	}
	return os.Rename(tmp, db)
}

// makeTemplate has MLflow create every table in a new database, checks
// that it reached the pinned head, and keeps it at tpl.
func (u *Upgrading) makeTemplate(ctx context.Context, tpl string) error {
	if err := os.MkdirAll(u.TemplateDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", u.TemplateDir, err)
	}
	tmp := tpl + ".making"
	_ = os.Remove(tmp)
	if out, err := Upgrade(ctx, u.Tool.Mlflow, tmp); err != nil {
		return fmt.Errorf("creating an empty MLflow database: %w\n%s", err, lastLines(out, 20))
	}
	pinned, err := u.Tool.Pinned(ctx)
	if err != nil {
		return err
	}
	if rev, err := Revision(ctx, tmp); err != nil || rev != pinned.Head {
		return fmt.Errorf("the empty MLflow database is at revision %q (%v), not MLflow %s's %s", rev, err, pinned.Version, pinned.Head)
	}
	return os.Rename(tmp, tpl)
}

func (u *Upgrading) migrate(ctx context.Context, db string) error {
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		return nil // a new project: MLflow creates the schema
	}
	rev, err := Revision(ctx, db)
	if err != nil {
		return err
	}
	pinned, err := u.Tool.Pinned(ctx)
	if err != nil {
		return err
	}
	switch pinned.Check(rev) {
	case mlflowschema.Empty, mlflowschema.Current:
		return nil
	case mlflowschema.Unknown:
		return fmt.Errorf("the MLflow database is at schema revision %s, which this panel's MLflow %s does not know (a newer MLflow made it): run the project on a panel with that MLflow or newer", rev, pinned.Version)
	}
	// One backup per source revision: a retried start overwrites the copy
	// of the same database rather than piling up copies.
	backup := fmt.Sprintf("%s.before-mlflow-%s-from-%s", db, pinned.Version, rev)
	if err := os.Remove(backup); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replacing the old backup %s: %w", backup, err)
	}
	if err := Snapshot(ctx, db, backup); err != nil {
		return fmt.Errorf("backing up the database before migrating it: %w", err)
	}
	if err := dropIndexes(ctx, db); err != nil {
		return fmt.Errorf("preparing the database for MLflow's migration: %w", err)
	}
	u.Log.Info("migrating MLflow database", "db", db, "from", rev, "to", pinned.Head, "backup", backup)
	out, err := Upgrade(ctx, u.Tool.Mlflow, db)
	_ = os.WriteFile(filepath.Join(filepath.Dir(db), "upgrade.log"), []byte(out), 0o644)
	if err != nil {
		if rerr := restore(backup, db); rerr != nil {
			return fmt.Errorf("migrating the MLflow database from %s to %s failed (%v) and restoring the backup %s failed too (%v): copy it over mlflow.db by hand; migration log:\n%s",
				rev, pinned.Head, err, backup, rerr, lastLines(out, 20))
		}
		return fmt.Errorf("migrating the MLflow database from %s to MLflow %s failed (%s), so the database was restored from its backup; migration log:\n%s",
			rev, pinned.Version, cause(out, err), lastLines(out, 20))
	}
	return nil
}

// restore puts the backup back; the journal of the failed migration
// would otherwise be replayed onto it.
func restore(backup, db string) error {
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		if err := os.Remove(db + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	tmp := db + ".restoring"
	if err := copyFile(backup, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, db)
}

func copyFile(src, dst string) error {
	b, err := os.Open(src)
	if err != nil {
		return err
	}
	defer b.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := f.ReadFrom(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cause is the line of MLflow's output that names the error (a Python
// traceback ends with it, before SQLAlchemy's statement dump), else err.
func cause(out string, err error) string {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.Contains(l, "Error: ") || strings.Contains(l, "Error) ") {
			return l
		}
	}
	return err.Error()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
