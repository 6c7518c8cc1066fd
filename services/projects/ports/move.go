package ports

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/projects/app"
)

// MoveOps are the export, import and clone endpoints. Archives never
// ride NATS: export answers which files to stream, import names a file
// the gateway already wrote to the shared data home.
func MoveOps(m *app.Mover) map[string]events.Operation {
	return map[string]events.Operation{
		// get replaces the plain one: the same project, plus its MLflow
		// version and schema revision.
		"get": func(ctx context.Context, r events.Request) (any, error) { return m.Describe(ctx, r.Param("id")) },
		// create replaces the plain one: a source adopts an existing MLflow.
		"create": func(ctx context.Context, r events.Request) (any, error) {
			var in app.CreateInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			in.CreatedBy = r.Caller
			return m.CreateOrAdopt(ctx, in, r.Restricted)
		},
		"export": func(ctx context.Context, r events.Request) (any, error) { return m.Export(ctx, r.Param("id")) },
		"export.release": func(ctx context.Context, r events.Request) (any, error) {
			var in struct {
				Dir string `json:"dir"`
			}
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			return m.Release(ctx, in.Dir)
		},
		"import.slot": func(ctx context.Context, r events.Request) (any, error) { return m.Slot(ctx) },
		"import": func(ctx context.Context, r events.Request) (any, error) {
			var in app.ImportInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			in.CreatedBy = r.Caller
			return m.Import(ctx, in)
		},
		"clone": func(ctx context.Context, r events.Request) (any, error) {
			var in app.CloneInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			in.CreatedBy = r.Caller
			return m.Clone(ctx, r.Param("id"), in)
		},
	}
}
