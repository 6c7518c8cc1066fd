// Package mlflowdb reads a project's MLflow database directly, read-only,
// in MLflow's own schema, for the reads MLflow's REST API cannot answer
// within the cost bound: run pages with a true total, run counts and the
// experiment time rule. It answers only what it can answer exactly as
// MLflow would; for everything else (another schema revision, a database
// it cannot open, a filter it does not translate) it says so and the
// caller asks MLflow's REST API instead.
package mlflowdb

import (
	"container/list"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // MySQL and MariaDB, registered as "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL, registered as "pgx"

	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
	"github.com/mlpanel/mlpanel/pkg/platform/mysqlurl"
	"github.com/mlpanel/mlpanel/services/tracking/app"
)

// ErrFallback says the database cannot answer this call exactly; ask
// MLflow's REST API.
var ErrFallback = app.ErrUseREST

// Reader opens each project's database once and keeps a small pool.
//
// Every open SQLite connection holds MLflow's parsed schema and its own
// page cache (measured: about 1.5 MB each with a 2 MB cache, so 50
// projects searched once grew the service by 120 MB and kept it). So a
// connection's cache is small (cacheKiB), a pool keeps at most one idle
// connection and closes it after IdleTimeout, and only the MaxWarm most
// recently used databases keep an idle connection at all: memory is
// bounded by MaxWarm whatever the number of projects, at the price of
// reopening a cold database (its schema parse, well under a millisecond).
type Reader struct {
	log *slog.Logger
	// MaxWarm is how many databases keep an idle connection
	// (MLPANEL_TRACKING_OPEN_DATABASES); 0 means defaultMaxWarm.
	MaxWarm int
	// IdleTimeout closes a connection unused that long; 0 means
	// defaultIdleTimeout.
	IdleTimeout time.Duration
	// PostgresURL is MLPANEL_PROJECT_DB_URL: the PostgreSQL server that
	// holds the databases of projects with backend postgresql. The
	// projects tell only their database's name, so no password travels
	// with them.
	PostgresURL string
	// MySQLURL is MLPANEL_PROJECT_MYSQL_URL: the MySQL/MariaDB server of
	// the databases of projects with backend mysql.
	MySQLURL string

	mu     sync.Mutex
	dbs    map[string]*conn
	warm   *list.List               // of *warmDB, most recently used first
	warmAt map[string]*list.Element // database key -> its element in warm
	warned map[string]string        // path -> reason already logged
	times  timesCache
	// totals: the true total of a search, remembered per database state
	// as the run times are, so a list a browser polls costs one count per
	// change of the database, not one per request. The page itself is an
	// index lookup (mlflowschema.Indexes), but the count reads every
	// entry that matches, about 10 ms at 100,000 runs.
	totals memo
	// drivers: chooseDriver's answers (cross.go).
	drivers memo
}

// New returns a Reader.
func New(log *slog.Logger) *Reader {
	return &Reader{log: log, dbs: map[string]*conn{}, warned: map[string]string{}, warm: list.New(), warmAt: map[string]*list.Element{},
		totals: memo{max: maxTotals}, drivers: memo{max: maxDrivers}}
}

// maxTotals and maxDrivers bound the reader's memos (a query's text per
// total, a few bytes per driver).
const (
	maxTotals  = 1024
	maxDrivers = 4096
)

const (
	defaultMaxWarm     = 64
	defaultIdleTimeout = 30 * time.Second
	// cacheKiB is each SQLite connection's page cache (SQLite's default
	// is 2,000 KiB): a search reads a few hundred KiB of a project, and
	// the operating system's file cache keeps the rest close anyway.
	cacheKiB = 128
)

type warmDB struct {
	key string
	db  *conn
}

// touch marks key's database as just used: it may keep an idle
// connection again, and the least recently used one beyond MaxWarm
// closes its idle connection (a connection in use closes when it is
// released; the pool itself stays, so no query on it ever fails).
// Called with r.mu held, so a pool is never cooled after it was warmed
// again.
func (r *Reader) touch(key string, db *conn) {
	if e := r.warmAt[key]; e != nil {
		r.warm.MoveToFront(e)
		return
	}
	db.SetMaxIdleConns(1)
	r.warmAt[key] = r.warm.PushFront(&warmDB{key: key, db: db})
	limit := r.MaxWarm
	if limit <= 0 {
		limit = defaultMaxWarm
	}
	for r.warm.Len() > limit {
		w := r.warm.Remove(r.warm.Back()).(*warmDB)
		delete(r.warmAt, w.key)
		w.db.SetMaxIdleConns(0)
	}
}

// DBPath is where the projects service keeps a project's MLflow database
// (services/projects/adapters/mlflowserver.go starts `mlflow server` with
// --backend-store-uri sqlite:///<path>/mlflow.db).
func DBPath(projectPath string) string { return filepath.Join(projectPath, "mlflow.db") }

// dbKey is the key of a project's database in the Reader: the SQLite
// file of a project folder, or the store as app.Project.Store gives it
// for another backend ("postgresql:<database>").
func dbKey(store string) string {
	if backend, _, ok := strings.Cut(store, ":"); ok && !strings.Contains(backend, "/") {
		return store
	}
	return DBPath(store)
}

// Close closes every pool.
func (r *Reader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, db := range r.dbs {
		_ = db.DB.Close()
		delete(r.dbs, p)
	}
	r.warm.Init()
	clear(r.warmAt)
}

// db returns the pool of the database of key (dbKey) after checking its
// schema revision; ErrFallback (logged once per database and reason)
// when it is missing, unreadable, of another revision or of a backend
// this package does not read.
func (r *Reader) db(ctx context.Context, key string) (*conn, error) {
	r.mu.Lock()
	db := r.dbs[key]
	if db == nil {
		var err error
		if db, err = r.open(key); err != nil {
			r.mu.Unlock()
			return nil, r.fallback(key, err.Error())
		}
		r.dbs[key] = db
	}
	r.touch(key, db)
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
		return nil, r.fallback(key, fmt.Sprintf("cannot read alembic_version: %v", err))
	}
	if !mlflowschema.Readable(rev) {
		return nil, r.fallback(key, fmt.Sprintf("schema revision %q is not one this mlpanel reads (it reads %s)", rev, mlflowschema.Head))
	}
	return db, nil
}

// open makes the pool of key's database; the error says why it cannot.
func (r *Reader) open(key string) (*conn, error) {
	backend, name, ok := strings.Cut(key, ":")
	switch {
	case !ok || filepath.IsAbs(key):
		if !filepath.IsAbs(key) {
			return nil, fmt.Errorf("%q is not an absolute path", key)
		}
		if _, err := os.Stat(key); err != nil {
			return nil, fmt.Errorf("cannot read the database: %w", err)
		}
		db, err := sql.Open(sqliteDriver, sqliteDSN(key))
		if err != nil {
			return nil, fmt.Errorf("cannot open the database: %w", err)
		}
		r.bound(db)
		return &conn{DB: db, dialect: sqlite}, nil
	case backend == "postgresql":
		if r.PostgresURL == "" {
			return nil, fmt.Errorf("MLPANEL_PROJECT_DB_URL is not set for the tracking service: give it the same value as the projects service")
		}
		u, err := url.Parse(r.PostgresURL)
		if err != nil || name == "" {
			return nil, fmt.Errorf("cannot make the address of database %q from MLPANEL_PROJECT_DB_URL: %v", name, err)
		}
		u.Path = "/" + name
		q := u.Query()
		// MLflow is the only writer; a read-only session makes that hold.
		q.Set("default_transaction_read_only", "on")
		u.RawQuery = q.Encode()
		db, err := sql.Open("pgx", u.String())
		if err != nil {
			return nil, fmt.Errorf("cannot open database %s: %w", name, err)
		}
		r.bound(db)
		return &conn{DB: db, dialect: postgres}, nil
	case backend == "mysql":
		if r.MySQLURL == "" {
			return nil, fmt.Errorf("MLPANEL_PROJECT_MYSQL_URL is not set for the tracking service: give it the same value as the projects service")
		}
		if name == "" {
			return nil, fmt.Errorf("project database of backend mysql has no name")
		}
		dsn, err := mysqlurl.DSN(r.MySQLURL, name)
		if err != nil {
			return nil, err
		}
		// MLflow is the only writer. No session setting makes a session
		// read-only on both MySQL 8 and MariaDB (transaction_read_only
		// against tx_read_only): this package only ever SELECTs, and
		// autocommit gives each query the committed state at its start.
		// interpolateParams: one round trip per query instead of three
		// (prepare, execute, close); safe with utf8mb4.
		db, err := sql.Open("mysql", dsn+"&interpolateParams=true")
		if err != nil {
			return nil, fmt.Errorf("cannot open database %s: %w", name, err)
		}
		db.SetMaxOpenConns(4)
		db.SetMaxIdleConns(2)
		db.SetConnMaxIdleTime(2 * time.Minute)
		return &conn{DB: db, dialect: mysql}, nil
	default:
		// Any other backend: MLflow's REST API answers, as it always can.
		return nil, fmt.Errorf("this mlpanel reads no %s database directly", backend)
	}
}

// bound sets the limits of a new pool (see Reader).
func (r *Reader) bound(db *sql.DB) {
	idle := r.IdleTimeout
	if idle <= 0 {
		idle = defaultIdleTimeout
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(idle)
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
