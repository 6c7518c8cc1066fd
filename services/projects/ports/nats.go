// Package ports exposes the projects use cases as NATS micro endpoints
// on mlpanel.projects.<operation>.
package ports

import (
	"context"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/projects/app"
)

// Service is the NATS service name; instances share the queue group.
const Service = "projects"

// Timeout bounds one operation; terminate waits for the process group to
// end, which takes up to the stop grace period.
const Timeout = 60 * time.Second

// Register adds the projects endpoints to nc and returns the micro service.
// extra adds more operations (MoveOps).
func Register(nc *nats.Conn, svc *app.Service, version string, extra ...map[string]events.Operation) (micro.Service, error) {
	ops := map[string]events.Operation{
		"list": func(ctx context.Context, r events.Request) (any, error) { return svc.List(ctx, r) },
		"get":  func(ctx context.Context, r events.Request) (any, error) { return svc.Find(ctx, r.Param("id")) },
		"create": func(ctx context.Context, r events.Request) (any, error) {
			var in app.CreateInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			in.CreatedBy = r.Caller
			return svc.Create(ctx, in)
		},
		"update": func(ctx context.Context, r events.Request) (any, error) {
			var in app.UpdateInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			return svc.Update(ctx, r.Param("id"), in)
		},
		"delete":      byRef(svc.Delete),
		"run":         byRef(svc.Run),
		"terminate":   byRef(svc.Terminate),
		"archive":     byRef(svc.Archive),
		"restore":     byRef(svc.Restore),
		"healthcheck": byRef(svc.Healthcheck),
		"ping":        byRef(svc.Ping),
		"logs": func(ctx context.Context, r events.Request) (any, error) {
			n := 100
			if v := r.Query["lines"]; v != "" {
				var err error
				if n, err = strconv.Atoi(v); err != nil {
					return nil, events.Errorf(http.StatusBadRequest, "lines=%q: want a whole number", v)
				}
			}
			return svc.Logs(ctx, r.Param("id"), n)
		},
	}
	for _, more := range extra {
		maps.Copy(ops, more)
	}
	return events.AddService(nc, Service, version, "MLflow tracking servers, one per project", Timeout, ops)
}

func byRef[T any](fn func(ctx context.Context, ref string) (T, error)) events.Operation {
	return func(ctx context.Context, r events.Request) (any, error) { return fn(ctx, r.Param("id")) }
}
