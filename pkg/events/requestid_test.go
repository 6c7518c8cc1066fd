package events

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestLogHandlerAddsRequestIDOnce: a line logged with a call's context
// carries its request id once, also from a logger that names it already.
func TestLogHandlerAddsRequestIDOnce(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil)))
	ctx := WithRequestID(context.Background(), "r-1")
	for name, logf := range map[string]func(){
		"context":       func() { log.InfoContext(ctx, "x") },
		"With":          func() { log.With("request_id", "r-1").InfoContext(ctx, "x") },
		"record attr":   func() { log.InfoContext(ctx, "x", "request_id", "r-1") },
		"wrapped twice": func() { slog.New(LogHandler(log.Handler())).InfoContext(ctx, "x") },
	} {
		buf.Reset()
		logf()
		if n := strings.Count(buf.String(), "request_id=r-1"); n != 1 {
			t.Errorf("%s: request_id appears %d times: %s", name, n, buf.String())
		}
	}
	buf.Reset()
	log.Info("no context")
	if strings.Contains(buf.String(), "request_id") {
		t.Errorf("a line without a call's context got an id: %s", buf.String())
	}
}
