//go:build !cgo

package mlflowdb

import (
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // pure-Go SQLite, registered as "sqlite"
)

// sqliteDriver without cgo (e.g. CGO_ENABLED=0 builds): the pure-Go
// SQLite. The answers are the same; deep pages of big projects are
// slower than with cgo (see sqlite_cgo.go).
const sqliteDriver = "sqlite"

// sqliteDSN: as in sqlite_cgo.go, in modernc's parameter syntax.
func sqliteDSN(path string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?mode=ro&_pragma=busy_timeout(5000)&_pragma=case_sensitive_like(1)&_pragma=query_only(1)" +
		fmt.Sprintf("&_pragma=cache_size(-%d)", cacheKiB)
}
