// Package mlflowschema decides, in one place, which MLflow schema
// revisions (alembic's version_num in a project's SQLite database) mlpanel
// works with: the projects service runs and imports databases the pinned
// MLflow can migrate, the tracking service reads with its own SQL only the
// pinned MLflow's head, and both read the revision the same way.
package mlflowschema

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // pure Go, registered as "sqlite"
)

// Head is the schema head of the pinned MLflow (python/requirements.txt):
// the one revision whose tables mlpanel's direct SQL reads understand.
// TestHeadIsThePinnedMLflowHead derives it from the installed MLflow's
// migrations and fails when a new pin moves it: then check that SQL
// (services/tracking/adapters/mlflowdb) against the new schema.
const Head = "dc11669786a5"

// Readable reports whether mlpanel's direct SQL reads understand a
// database at rev; any other is answered through MLflow's REST API.
func Readable(rev string) bool { return rev == Head }

// Status is what a database's revision means to a panel whose MLflow
// has head and knows the revisions known.
type Status int

const (
	// Empty: MLflow never initialised the database; it creates the schema.
	Empty Status = iota
	// Current: the database is at the panel MLflow's head.
	Current
	// Older: the panel's MLflow can migrate it (`mlflow db upgrade`).
	Older
	// Unknown: a newer MLflow made it; this panel cannot run it.
	Unknown
)

// Check classifies rev against the panel's MLflow.
func Check(rev, head string, known []string) Status {
	switch {
	case rev == "":
		return Empty
	case rev == head:
		return Current
	}
	for _, k := range known {
		if k == rev {
			return Older
		}
	}
	return Unknown
}

// Querier is an open database (*sql.DB, *sql.Conn, *sql.Tx).
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Read is the revision of an open database: "" for one MLflow never
// initialised.
func Read(ctx context.Context, db Querier) (string, error) {
	var rev string
	err := db.QueryRowContext(ctx, "SELECT version_num FROM alembic_version").Scan(&rev)
	switch {
	case err == nil:
		return rev, nil
	case errors.Is(err, sql.ErrNoRows), strings.Contains(err.Error(), "no such table"):
		return "", nil
	}
	return "", fmt.Errorf("reading alembic_version: %w", err)
}

// ReadFile opens the database at path read-only and reads its revision.
func ReadFile(ctx context.Context, path string) (string, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(30000)")
	q.Set("mode", "ro")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	rev, err := Read(ctx, db)
	if err != nil {
		return "", fmt.Errorf("reading the schema revision of %s: %w", path, err)
	}
	return rev, nil
}

// Cache remembers each database file's revision while the file stays the
// same (inode, size, modification time and SQLite's file change counter),
// so a call that shows a project's revision does not open its database
// every time. A migration commits to the file, which moves the change
// counter (MLflow's SQLite runs in rollback-journal mode) and the mtime,
// and a restore replaces the file (another inode): the next call reads
// again. The counter covers writes within one tick of a coarse mtime.
type Cache struct {
	// ReadFile reads a revision; nil is this package's ReadFile.
	ReadFile func(ctx context.Context, path string) (string, error)

	mu sync.Mutex
	by map[string]cached
}

type cached struct {
	ino     uint64
	size    int64
	mtime   time.Time
	counter uint32
	rev     string
}

// Revision is the revision of the database at path, read again only when
// the file changed.
func (c *Cache) Revision(ctx context.Context, path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		c.forget(path)
		return "", fmt.Errorf("the database %s: %w", path, err)
	}
	key := cached{size: st.Size(), mtime: st.ModTime(), counter: changeCounter(path)}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		key.ino = uint64(sys.Ino)
	}
	c.mu.Lock()
	e, ok := c.by[path]
	c.mu.Unlock()
	if ok && e.ino == key.ino && e.size == key.size && e.mtime.Equal(key.mtime) && e.counter == key.counter {
		return e.rev, nil
	}
	read := c.ReadFile
	if read == nil {
		read = ReadFile
	}
	// Stat before the read: a write between them leaves a key older than
	// the value, so the next call reads again; never the other way round.
	rev, err := read(ctx, path)
	if err != nil {
		return "", err
	}
	key.rev = rev
	c.mu.Lock()
	if c.by == nil {
		c.by = map[string]cached{}
	}
	c.by[path] = key
	c.mu.Unlock()
	return rev, nil
}

// changeCounter is SQLite's file change counter (header bytes 24-27),
// which every committed write transaction increments in rollback-journal
// mode; 0 when the header cannot be read.
func changeCounter(path string) uint32 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var h [28]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return 0
	}
	return binary.BigEndian.Uint32(h[24:28])
}

func (c *Cache) forget(path string) {
	c.mu.Lock()
	delete(c.by, path)
	c.mu.Unlock()
}
