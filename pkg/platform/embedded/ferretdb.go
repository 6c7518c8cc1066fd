package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// FerretDB is an in-process FerretDB v1 using the SQLite handler: one SQLite
// file per database under its directory.
type FerretDB struct {
	db     *ferretdb.FerretDB
	cancel context.CancelFunc
	done   chan struct{}
}

// StartFerretDB starts FerretDB with its files under dir, listening on addr
// ("host:port"; port 0 or an empty addr picks a free loopback port). It
// returns once the listener accepts connections. ctx bounds start-up only:
// the server runs until Close, so that on shutdown the services can finish
// their last writes after the signal context is cancelled.
//
// Only its errors are logged: FerretDB logs every failed command (even the
// driver's endSessions on each Disconnect, which v1 lacks) as a multi-line
// warning, and the driver returns those failures to the caller anyway.
func StartFerretDB(ctx context.Context, dir, addr string, opts ...Option) (*FerretDB, error) {
	cfg := newConfig(opts, slog.LevelError)
	host, port, err := loopback(addr)
	if err != nil {
		return nil, fmt.Errorf("starting embedded FerretDB: address %q: %w", addr, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("starting embedded FerretDB: %w", err)
	}
	// FerretDB hands the unescaped path to SQLite as a URI, where these
	// characters end or change the path: data would land somewhere else.
	if strings.ContainsAny(abs, "?#%") {
		return nil, fmt.Errorf("starting embedded FerretDB: dir %q must not contain '?', '#' or '%%'", abs)
	}
	// The SQLite handler refuses a missing directory.
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("starting embedded FerretDB: %w", err)
	}
	// The handler wants a file: URL with a trailing slash.
	sqliteURL := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs) + "/"}).String()

	listen := net.JoinHostPort(host, port)
	// ferretdb.New leaks its SQLite backend when the port is taken, and a
	// debug build of it (which -race implies) then panics in a finalizer,
	// killing the test binary. So report a taken port before calling it.
	if port != "0" {
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("starting embedded FerretDB: %w", err)
		}
		_ = l.Close()
	}

	// New opens the SQLite backend and binds the listener.
	db, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: listen},
		Logger:    cfg.logger.With("component", "ferretdb"),
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return nil, fmt.Errorf("starting embedded FerretDB on %s (dir %s): %w", addr, abs, err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	f := &FerretDB{db: db, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		_ = db.Run(runCtx) // always nil; it returns when runCtx is cancelled
	}()

	// New has bound the listener, so this dial succeeds at once; it keeps the
	// "returns once it accepts connections" promise should FerretDB ever bind
	// lazily in Run, and checks the URI we hand out.
	hostPort, err := f.hostPort()
	if err == nil {
		var c net.Conn
		d := net.Dialer{Timeout: 5 * time.Second}
		if c, err = d.DialContext(ctx, "tcp", hostPort); err == nil {
			_ = c.Close()
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("starting embedded FerretDB on %s (dir %s): %w", addr, abs, err)
	}
	return f, nil
}

func (f *FerretDB) hostPort() (string, error) {
	u, err := url.Parse(f.db.MongoDBURI())
	if err != nil {
		return "", err
	}
	return u.Host, nil
}

// URI is the mongodb:// connection string, e.g. mongodb://127.0.0.1:PORT/.
func (f *FerretDB) URI() string { return f.db.MongoDBURI() }

// Close stops the listener, closes the SQLite databases and waits for all of
// it, so the same dir can be reopened. FerretDB gives still-open client
// connections up to 3 s to go away before cutting them, so disconnect the
// mongo clients first or Close takes those 3 s.
func (f *FerretDB) Close() {
	f.cancel()
	<-f.done
}
