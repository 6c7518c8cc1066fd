// Package mlflowdb reads a project's MLflow database directly, read-only,
// in MLflow's own schema, for the reads MLflow's REST API cannot answer
// within the cost bound: run pages with a true total, run counts and the
// experiment time rule. It answers only what it can answer exactly as
// MLflow would; for everything else (another schema revision, a database
// it cannot open, a filter it does not translate) it says so and the
// caller asks MLflow's REST API instead.
package mlflowdb

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
	"github.com/mlpanel/mlpanel/services/tracking/app" // pure-Go SQLite driver, registered as "sqlite"
)

// ErrFallback says the database cannot answer this call exactly; ask
// MLflow's REST API.
var ErrFallback = app.ErrUseREST

// Reader opens each project's database once and keeps a small pool.
type Reader struct {
	log *slog.Logger

	mu     sync.Mutex
	dbs    map[string]*sql.DB
	warned map[string]string // path -> reason already logged
	times  timesCache
}

// New returns a Reader.
func New(log *slog.Logger) *Reader {
	return &Reader{log: log, dbs: map[string]*sql.DB{}, warned: map[string]string{}}
}

// DBPath is where the projects service keeps a project's MLflow database
// (services/projects/adapters/mlflowserver.go starts `mlflow server` with
// --backend-store-uri sqlite:///<path>/mlflow.db).
func DBPath(projectPath string) string { return filepath.Join(projectPath, "mlflow.db") }

// Close closes every pool.
func (r *Reader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, db := range r.dbs {
		_ = db.Close()
		delete(r.dbs, p)
	}
}

// db returns the pool of the database at path after checking its schema
// revision; ErrFallback (logged once per path and reason) when the file
// is missing, unreadable or of another revision.
func (r *Reader) db(ctx context.Context, path string) (*sql.DB, error) {
	if path == "" || !filepath.IsAbs(path) {
		return nil, ErrFallback
	}
	r.mu.Lock()
	db := r.dbs[path]
	if db == nil {
		if _, err := os.Stat(path); err != nil {
			r.mu.Unlock()
			return nil, r.fallback(path, fmt.Sprintf("cannot read the database: %v", err))
		}
		// mode=ro: MLflow is the only writer. case_sensitive_like: MLflow
		// sets it on every SQLite session, and LIKE must match as in MLflow.
		dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
			"?mode=ro&_pragma=busy_timeout(5000)&_pragma=case_sensitive_like(1)&_pragma=query_only(1)"
		var err error
		db, err = sql.Open("sqlite", dsn)
		if err != nil {
			r.mu.Unlock()
			return nil, r.fallback(path, fmt.Sprintf("cannot open the database: %v", err))
		}
		db.SetMaxOpenConns(4)
		db.SetMaxIdleConns(2)
		db.SetConnMaxIdleTime(2 * time.Minute)
		r.dbs[path] = db
	}
	r.mu.Unlock()
	// The revision is read on every call (microseconds): `mlflow db
	// upgrade` may move it while the service runs.
	// Which revisions this SQL understands is decided in mlflowschema,
	// for this service and the projects service alike.
	rev, err := mlflowschema.Read(ctx, db)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, r.fallback(path, fmt.Sprintf("cannot read alembic_version: %v", err))
	}
	if !mlflowschema.Readable(rev) {
		return nil, r.fallback(path, fmt.Sprintf("schema revision %q is not one this mlpanel reads (it reads %s)", rev, mlflowschema.Head))
	}
	return db, nil
}

// fallback logs one warning per database and reason, and returns
// ErrFallback.
func (r *Reader) fallback(path, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.warned[path] != reason {
		r.warned[path] = reason
		r.log.Warn("reading MLflow's database directly is off for this project; using MLflow's REST API", "db", path, "reason", reason)
	}
	return ErrFallback
}
