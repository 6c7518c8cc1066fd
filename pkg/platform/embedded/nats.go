package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsReadyTimeout bounds start-up; JetStream recovers its streams from disk
// before the server accepts clients, which is quick for our small streams.
const natsReadyTimeout = 10 * time.Second

// NATS is an in-process nats-server with JetStream.
type NATS struct {
	srv *server.Server
}

// StartNATS starts a NATS server with JetStream storing under dir and
// listening on addr ("host:port"; port 0 or an empty addr picks a free
// loopback port). It returns once the server accepts connections. Its
// warnings and errors are logged (slow consumers, JetStream limits).
func StartNATS(dir, addr string, opts ...Option) (*NATS, error) {
	cfg := newConfig(opts, slog.LevelWarn)
	host, portStr, err := loopback(addr)
	if err != nil {
		return nil, fmt.Errorf("starting embedded NATS: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("starting embedded NATS: port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as "default 4222"
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("starting embedded NATS: %w", err)
	}

	srv, err := server.NewServer(&server.Options{
		ServerName: "mlpanel-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true, // signals belong to the host process
	})
	if err != nil {
		return nil, fmt.Errorf("starting embedded NATS: %w", err)
	}
	log := &natsLogger{l: cfg.logger.With("component", "nats")}
	srv.SetLoggerV2(log, false, false, false)
	n := &NATS{srv: srv}
	go srv.Start()

	// Start reports a bind or JetStream failure only through Fatalf, so poll
	// for it instead of sitting out the whole timeout.
	deadline := time.Now().Add(natsReadyTimeout)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		if msg := log.fatal.Load(); msg != nil {
			n.Shutdown()
			return nil, fmt.Errorf("starting embedded NATS on %s (store %s): %s", addr, dir, *msg)
		}
		if time.Now().After(deadline) {
			n.Shutdown()
			return nil, fmt.Errorf("starting embedded NATS on %s (store %s): not ready for connections after %s", addr, dir, natsReadyTimeout)
		}
	}
	return n, nil
}

// ClientURL is the nats:// URL clients connect to.
func (n *NATS) ClientURL() string { return n.srv.ClientURL() }

// Shutdown closes client connections, flushes JetStream and waits until the
// server has stopped, so the same dir can be reopened right after.
func (n *NATS) Shutdown() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// natsLogger adapts nats-server's logger to slog. Fatalf must not exit the
// host process (the default logger's does); it records the message instead.
type natsLogger struct {
	l     *slog.Logger
	fatal atomic.Pointer[string]
}

func (n *natsLogger) Noticef(f string, v ...any) { n.log(slog.LevelInfo, f, v) }
func (n *natsLogger) Warnf(f string, v ...any)   { n.log(slog.LevelWarn, f, v) }
func (n *natsLogger) Errorf(f string, v ...any)  { n.log(slog.LevelError, f, v) }
func (n *natsLogger) Debugf(f string, v ...any)  { n.log(slog.LevelDebug, f, v) }
func (n *natsLogger) Tracef(f string, v ...any)  { n.log(slog.LevelDebug, f, v) }

func (n *natsLogger) Fatalf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	n.fatal.CompareAndSwap(nil, &msg)
	n.l.Error(msg)
}

// log formats only what will be written: notices come per connection.
func (n *natsLogger) log(level slog.Level, f string, v []any) {
	ctx := context.Background()
	if n.l.Enabled(ctx, level) {
		n.l.Log(ctx, level, fmt.Sprintf(f, v...))
	}
}

// Compile-time check that the adapter satisfies nats-server's interface.
var _ server.Logger = (*natsLogger)(nil)
