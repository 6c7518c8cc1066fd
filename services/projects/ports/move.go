package ports

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	deployer "github.com/mlpanel/mlpanel/services/deployer/client"
	"github.com/mlpanel/mlpanel/services/projects/app"
)

// Deployments asks the deployer for a project's deployment definitions.
func Deployments(nc *nats.Conn) func(ctx context.Context, projectID string) (json.RawMessage, error) {
	return func(ctx context.Context, projectID string) (json.RawMessage, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var page struct {
			Items json.RawMessage `json:"items"`
		}
		req := events.Request{Query: map[string]string{"project_id": projectID}}
		if err := events.CallIdempotent(ctx, nc, deployer.Subject("list"), req, &page); err != nil {
			return nil, fmt.Errorf("listing deployments of project %s: %w", projectID, err)
		}
		if len(page.Items) == 0 || string(page.Items) == "null" {
			return json.RawMessage("[]"), nil
		}
		return page.Items, nil
	}
}

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
