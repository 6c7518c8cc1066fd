package mlflowschema

import (
	"context"
	"database/sql"
	"fmt"
)

// Index is one index mlpanel adds to MLflow's schema. MLflow indexes
// `runs` by its primary key only, so its default order (start_time DESC,
// run_uuid) sorts every run of a search: a first page that grows with the
// project. The projects service, which owns the writes to a project's
// database, adds these before each start, and drops them before MLflow
// migrates the database, so that MLflow's migrations only ever see
// MLflow's own schema. The tracking service reads through them and
// stays read-only: on a database without them its answers are the same,
// only slower.
type Index struct {
	Name    string
	Table   string
	Columns string
}

// Indexes are the indexes the panel keeps on every project's database.
var Indexes = []Index{
	// The order of MLflow's default search, carrying the columns of its
	// WHERE: the run ids of a page and the count of a search without a
	// filter are read from the index alone (SQLite: "SCAN runs USING
	// COVERING INDEX"), so the first page costs ten index entries and
	// a deep one the entries it skips, never a sort of the project.
	{Name: "mlpanel_runs_by_start_time", Table: "runs", Columns: "start_time DESC, run_uuid, experiment_id, lifecycle_stage"},
}

// Dialect names a database's SQL flavour: "sqlite", "postgres", "mysql".
type Dialect string

// The dialects the panel's indexes are written for.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
	MySQL    Dialect = "mysql"
)

// Execer is an open database that takes statements (*sql.DB, *sql.Conn).
type Execer interface {
	Querier
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// EnsureIndexes creates the panel's indexes that db lacks. It returns
// nil without a change on a database where MLflow has not made its
// tables yet: the indexes come with the next start.
func EnsureIndexes(ctx context.Context, db Execer, d Dialect) error {
	for _, ix := range Indexes {
		made, err := catalogHas(ctx, db, d, "table", ix.Table)
		if err != nil || !made {
			return err
		}
		has, err := catalogHas(ctx, db, d, "index", ix.Name)
		if err != nil {
			return err
		}
		if has {
			continue
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf("CREATE INDEX %s ON %s (%s)", ix.Name, ix.Table, ix.Columns)); err != nil {
			return fmt.Errorf("creating the index %s on %s: %w", ix.Name, ix.Table, err)
		}
	}
	return nil
}

// DropIndexes removes the panel's indexes from db, for MLflow's
// migrations; EnsureIndexes puts them back afterwards.
func DropIndexes(ctx context.Context, db Execer, d Dialect) error {
	for _, ix := range Indexes {
		has, err := catalogHas(ctx, db, d, "index", ix.Name)
		if err != nil {
			return err
		}
		if !has {
			continue
		}
		stmt := "DROP INDEX " + ix.Name
		if d == MySQL {
			stmt += " ON " + ix.Table
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("dropping the index %s: %w", ix.Name, err)
		}
	}
	return nil
}

// catalogue is, per dialect, how to ask whether a table or an index
// exists: MySQL has no CREATE INDEX IF NOT EXISTS, and the three
// dialects keep their catalogues apart.
var catalogue = map[Dialect]map[string]string{
	SQLite: {
		"table": "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
		"index": "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?",
	},
	Postgres: {
		"table": "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1",
		"index": "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1",
	},
	MySQL: {
		"table": "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
		"index": "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND index_name = ?",
	},
}

// catalogHas tells whether db has the table or index named name.
func catalogHas(ctx context.Context, db Querier, d Dialect, kind, name string) (bool, error) {
	q, ok := catalogue[d][kind]
	if !ok {
		return false, fmt.Errorf("mlflowschema: no catalogue query for a %s in dialect %q", kind, d)
	}
	var n int
	if err := db.QueryRowContext(ctx, q, name).Scan(&n); err != nil {
		return false, fmt.Errorf("looking up the %s %s: %w", kind, name, err)
	}
	return n > 0, nil
}

// EnsureIndexesAt is EnsureIndexes on the database a database/sql
// driver (registered by the caller) opens at dsn.
func EnsureIndexesAt(ctx context.Context, driver, dsn string, d Dialect) error {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	return EnsureIndexes(ctx, db, d)
}
