package events

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Operation answers one control-plane request.
type Operation func(ctx context.Context, r Request) (any, error)

// ServiceOption changes how AddService serves its operations.
type ServiceOption func(*serviceOptions)

type serviceOptions struct{ log *slog.Logger }

// WithLog logs one line per request served (debug; error for a failure
// that is not the caller's), carrying the caller's request id.
func WithLog(log *slog.Logger) ServiceOption {
	return func(o *serviceOptions) { o.log = log }
}

// HostMetadata is the $SRV.INFO metadata key under which every instance
// names the host it runs on, so a container's healthcheck (deployments'
// healthcheck nats) checks the instance in that container, not any
// replica.
const HostMetadata = "host"

// AddService registers a micro service named name in a queue group of the
// same name, with one endpoint per operation on
// mlpanel.<name>.<operation>, each run under timeout. The instance
// advertises its host name (HostMetadata).
func AddService(nc *nats.Conn, name, version, description string, timeout time.Duration, ops map[string]Operation, opts ...ServiceOption) (micro.Service, error) {
	var o serviceOptions
	for _, opt := range opts {
		opt(&o)
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("adding micro service %s: the host name: %w", name, err)
	}
	ms, err := micro.AddService(nc, micro.Config{
		Name: name, Version: version, Description: description, QueueGroup: name,
		Metadata: map[string]string{HostMetadata: host},
	})
	if err != nil {
		return nil, fmt.Errorf("adding micro service %s: %w", name, err)
	}
	g := ms.AddGroup(ControlPrefix + "." + name)
	for op, fn := range ops {
		// Endpoint names may not hold dots; the subject keeps them.
		endpoint := strings.ReplaceAll(op, ".", "_")
		if o.log != nil {
			fn = logged(o.log, ControlSubject(name, op), fn)
		}
		if err := g.AddEndpoint(endpoint, handler(nc, timeout, fn), micro.WithEndpointSubject(op)); err != nil {
			_ = ms.Stop()
			return nil, fmt.Errorf("adding endpoint %s.%s: %w", name, op, err)
		}
	}
	return ms, nil
}

// logged logs each request of fn with the request id its context carries,
// so a service's lines for one HTTP call can be found by the id the
// gateway answered with.
func logged(log *slog.Logger, subject string, fn Operation) Operation {
	log = slog.New(LogHandler(log.Handler()))
	return func(ctx context.Context, r Request) (any, error) {
		start := time.Now()
		res, err := fn(ctx, r)
		level, status := slog.LevelDebug, 200
		if err != nil {
			status = StatusOf(err)
			if status >= 500 {
				level = slog.LevelError
			}
		}
		attrs := []slog.Attr{slog.String("subject", subject), slog.Int("status", status), slog.Duration("duration", time.Since(start))}
		if r.Caller != "" {
			attrs = append(attrs, slog.String("caller", r.Caller))
		}
		if err != nil {
			attrs = append(attrs, slog.String("err", err.Error()))
		}
		log.LogAttrs(ctx, level, "nats request", attrs...)
		return res, err
	}
}
