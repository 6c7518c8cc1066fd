package events

import (
	"context"
	"log/slog"
)

// RequestIDHeader carries the id of the HTTP request a control-plane call
// serves (the gateway's X-Request-ID), so a service's log lines for it
// can be found beside the gateway's.
const RequestIDHeader = "Mlpanel-Request-Id"

type requestIDKey struct{}

// WithRequestID is ctx carrying request id; calls made with it send it on.
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the request id ctx carries, "" for none.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// LogHandler adds request_id to every record logged with a context that
// carries one (slog's *Context methods and LogAttrs), so a service's lines
// for a call need no logger threaded through. A logger that already says
// request_id (With, or the record's own attrs) keeps its one.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(requestIDHandler); ok {
		return h
	}
	return requestIDHandler{Handler: h}
}

const requestIDAttr = "request_id"

type requestIDHandler struct {
	slog.Handler
	has bool // WithAttrs gave it a request_id already
}

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" && !h.has && !recordHas(r, requestIDAttr) {
		r = r.Clone()
		r.AddAttrs(slog.String(requestIDAttr, id))
	}
	return h.Handler.Handle(ctx, r)
}

func recordHas(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	has := h.has
	for _, a := range as {
		has = has || a.Key == requestIDAttr
	}
	return requestIDHandler{h.Handler.WithAttrs(as), has}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name), h.has}
}
