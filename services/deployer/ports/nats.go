// Package ports exposes the deployer's use cases as NATS micro endpoints
// on mlpanel.deployer.<operation>.
package ports

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/deployer/app"
)

// Service is the NATS service name; instances share the queue group.
const Service = "deployer"

// Timeout bounds one operation. Slow steps (starting, stopping, cloud
// calls) run in the background, so this only covers lookups.
const Timeout = 60 * time.Second

// Register adds the deployer endpoints to nc and returns the micro service.
func Register(nc *nats.Conn, svc *app.Service, version string) (micro.Service, error) {
	ops := map[string]events.Operation{
		"list": func(ctx context.Context, r events.Request) (any, error) {
			return svc.List(ctx, r.List, app.Filter{
				ProjectID: r.Query["project_id"], ModelID: r.Query["model_id"],
				Status: r.Query["status"], Type: r.Query["type"],
				// A deployment is visible with its project; the project's
				// creator is the projects service's to know, so a
				// restricted caller sees the projects listed in Visible.
				Sees: func(projectID string) bool { return r.Sees(projectID, events.Creator{}) },
			})
		},
		"get": byID(svc.Get),
		"create": func(ctx context.Context, r events.Request) (any, error) {
			var in app.CreateInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			// The original took project_id as a query parameter too.
			if in.ProjectID == "" {
				in.ProjectID = app.FlexString(r.Query["project_id"])
			}
			in.CreatedBy = r.Caller
			return svc.Create(ctx, in)
		},
		"delete": byID(svc.Delete),
		"run":    byID(svc.Run),
		"stop":   byID(svc.Stop),
		"ping":   byID(svc.Ping),
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
	return events.AddService(nc, Service, version, "Registered models served as prediction endpoints, locally or on Compute Engine", Timeout, ops)
}

func byID[T any](fn func(ctx context.Context, id string) (T, error)) events.Operation {
	return func(ctx context.Context, r events.Request) (any, error) { return fn(ctx, r.Param("id")) }
}
