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
// for a call need no logger threaded through.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(requestIDHandler); ok {
		return h
	}
	return requestIDHandler{h}
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
