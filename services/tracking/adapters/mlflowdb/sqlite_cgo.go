//go:build cgo

package mlflowdb

import (
	"fmt"
	"net/url"

	_ "github.com/mattn/go-sqlite3" // SQLite's C library, registered as "sqlite3"
)

// sqliteDriver is the driver of the direct reads from a project's SQLite
// database. With cgo it is SQLite's own C code, the library MLflow's
// SQLAlchemy reads through: measured at 100,000 runs, the full sort of a
// deep /runs page took about a third of the time of the pure-Go
// transpilation (modernc.org/sqlite), which left the page slower than
// MLflow's own call. Without cgo (sqlite_purego.go) the reads still work,
// more slowly.
const sqliteDriver = "sqlite3"

// sqliteDSN is the address of the database file at path, opened
// read-only (MLflow is its only writer) with LIKE case-sensitive, as
// MLflow sets it on every SQLite session so LIKE matches as in MLflow,
// with a small page cache (cacheKiB: a bigger one was measured no
// faster with the C library, whose reads from the OS page cache are
// cheap, and it is held per open connection).
func sqliteDSN(path string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?mode=ro&_busy_timeout=5000&_cslike=1&_query_only=1" +
		fmt.Sprintf("&_cache_size=-%d", cacheKiB)
}
