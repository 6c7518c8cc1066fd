// Package ports exposes the projects use cases as NATS micro endpoints
// on mlpanel.projects.<operation>.
package ports

import (
	"context"
	"log/slog"
	"maps"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/app"
)

// Service is the NATS service name; instances share the queue group.
const Service = "projects"

// Timeout bounds one operation; terminate waits for the process group to
// end, which takes up to the stop grace period.
const Timeout = 60 * time.Second

// Register adds the projects endpoints to nc and returns the micro service;
// log gets a line per request (events.WithLog). extra adds more
// operations (MoveOps).
func Register(nc *nats.Conn, svc *app.Service, version string, log *slog.Logger, extra ...map[string]events.Operation) (micro.Service, error) {
	ops := map[string]events.Operation{
		"list": func(ctx context.Context, r events.Request) (any, error) { return svc.List(ctx, r) },
		"get":  func(ctx context.Context, r events.Request) (any, error) { return svc.Find(ctx, r.Param("id")) },
		"create": func(ctx context.Context, r events.Request) (any, error) {
			var in app.CreateInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			in.CreatedBy, in.CreatedByID = r.Caller, r.CallerID
			return svc.Create(ctx, in)
		},
		"update": func(ctx context.Context, r events.Request) (any, error) {
			var in app.UpdateInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			return svc.Update(ctx, r.Param("id"), in)
		},
		"delete":      events.ByID(svc.Delete),
		"run":         events.ByID(svc.Run),
		"terminate":   events.ByID(svc.Terminate),
		"archive":     events.ByID(svc.Archive),
		"restore":     events.ByID(svc.Restore),
		"healthcheck": events.ByID(svc.Healthcheck),
		"ping":        events.ByID(svc.Ping),
		"logs":        events.LogsOp(proc.MaxLogLines, svc.Logs),
		"stats":       events.ByID(svc.Stats),
		"stats-all":   func(ctx context.Context, _ events.Request) (any, error) { return svc.AllStats(ctx) },
		// wake answers once the server runs, bounded by the start timeout.
		"wake": events.ByID(svc.Wake),
		"activity": func(_ context.Context, r events.Request) (any, error) {
			var rep activity.Report
			if err := r.DecodeBody(&rep); err != nil {
				return nil, err
			}
			svc.Touch(rep)
			return struct{}{}, nil
		},
	}
	for _, more := range extra {
		maps.Copy(ops, more)
	}
	return events.AddService(nc, Service, version, "MLflow tracking servers, one per project", Timeout, ops, events.WithLog(log))
}
