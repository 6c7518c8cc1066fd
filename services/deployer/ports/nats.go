// Package ports exposes the deployer's use cases as NATS micro endpoints
// on mlpanel.deployer.<operation>.
package ports

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/deployer/app"
)

// Service is the NATS service name; instances share the queue group.
const Service = "deployer"

// Timeout bounds one operation. Slow steps (starting, stopping, cloud
// calls) run in the background, so this only covers lookups.
const Timeout = 60 * time.Second

// Register adds the deployer endpoints to nc and returns the micro service.
func Register(nc *nats.Conn, svc *app.Service, version string, opts ...events.ServiceOption) (micro.Service, error) {
	ops := map[string]events.Operation{
		"list": func(ctx context.Context, r events.Request) (any, error) {
			return svc.List(ctx, r.List, app.Filter{
				ProjectID: r.Query["project_id"], ModelID: r.Query["model_id"],
				Status: given(r.Query, "status"), Type: given(r.Query, "type"),
				// A deployment is visible with its project; the project's
				// creator is the projects service's to know, so a
				// restricted caller sees the projects listed in Visible.
				Sees: func(projectID string) bool { return r.Sees(projectID, events.Creator{}) },
			})
		},
		"get": events.ByID(svc.Get),
		"create": func(ctx context.Context, r events.Request) (any, error) {
			var in app.CreateInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			// The original's public API took everything in the query.
			fromQuery := func(dst *string, key string) {
				if *dst == "" {
					*dst = r.Query[key]
				}
			}
			fromQuery((*string)(&in.ProjectID), "project_id")
			fromQuery(&in.ModelID, "model_id")
			fromQuery((*string)(&in.Version), "version")
			fromQuery(&in.Type, "type")
			fromQuery(&in.FollowAlias, "follow_alias")
			in.CreatedBy = r.Caller
			return svc.Create(ctx, in)
		},
		"update": func(ctx context.Context, r events.Request) (any, error) {
			var in app.UpdateInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			return svc.Update(ctx, r.Path["id"], in)
		},
		"wake": events.ByID(svc.Wake),
		"activity": func(_ context.Context, r events.Request) (any, error) {
			var rep activity.Report
			if err := r.DecodeBody(&rep); err != nil {
				return nil, err
			}
			svc.Touch(rep)
			return struct{}{}, nil
		},
		"delete": events.ByID(svc.Delete),
		"run":    events.ByID(svc.Run),
		"stop":   events.ByID(svc.Stop),
		"ping":   events.ByID(svc.Ping),
		"stats":  events.ByID(svc.Stats),
		"schema": events.ByID(svc.Schema),
		"logs":   events.LogsOp(proc.MaxLogLines, svc.Logs),
	}
	return events.AddService(nc, Service, version, "Registered models served as prediction endpoints, locally or on Compute Engine", Timeout, ops, opts...)
}

// given is a query parameter that was sent (even empty), or nil.
func given(q map[string]string, name string) *string {
	if v, ok := q[name]; ok {
		return &v
	}
	return nil
}
