// Package embedded runs the all-in-one mode's infrastructure inside the
// mlpanel process: a NATS server with JetStream and FerretDB v1 on SQLite as
// the MongoDB. Both keep their data under a directory, so a restart on the
// same directory sees the same streams and collections.
//
// FerretDB v1 is not MongoDB. Gaps that matter to callers (the tests show
// what does work): no transactions, change streams, TTL or partial indexes,
// arrayFilters, positional "$" updates, pipeline updates, $expr, $lookup,
// $facet, collations, findAndModify projections or Decimal128 (it drops the
// connection). Concurrent read-modify-write updates of one document lose
// writes (even $inc), so every entity needs a single in-process writer. A
// unique index violated by an update (not an insert or upsert) comes back as
// InternalError "UNIQUE constraint failed", which mongo.IsDuplicateKeyError
// does not recognise.
package embedded

import (
	"context"
	"log/slog"
	"net"
)

// Option configures an embedded server.
type Option func(*config)

type config struct {
	logger *slog.Logger
}

// WithLogger sends the servers' logs to l (default slog.Default()). Only
// their warnings and errors get through, see StartNATS and StartFerretDB.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// newConfig applies opts and keeps only records at min or above: both
// servers log every connection at Info, which would drown the services' logs.
func newConfig(opts []Option, minLevel slog.Level) config {
	c := config{logger: slog.Default()}
	for _, o := range opts {
		o(&c)
	}
	c.logger = slog.New(levelHandler{c.logger.Handler(), minLevel})
	return c
}

// loopback turns "" into a random loopback port, so tests and a second
// instance never collide with a real server on the default port.
func loopback(addr string) (host, port string, err error) {
	if addr == "" {
		return "127.0.0.1", "0", nil
	}
	return net.SplitHostPort(addr)
}

// levelHandler drops records below min.
type levelHandler struct {
	slog.Handler
	min slog.Level
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(as), h.min}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(name), h.min}
}
