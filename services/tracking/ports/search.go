package ports

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/app"
)

// SearchOps are the searches across projects, on mlpanel.tracking.search.*
// and mlpanel.tracking.compare.*. Each passes the caller (identity and
// restriction) on, so only the projects the caller may view are read.
func SearchOps(s *app.Search) map[string]events.Operation {
	return map[string]events.Operation{
		"search.runs": func(ctx context.Context, r events.Request) (any, error) {
			return s.SearchRuns(ctx, r, app.SearchQuery{
				Projects: r.Query["projects"], ExperimentName: r.Query["experiment_name"],
				Filter: r.Query["filter"], OrderBy: r.Query["order_by"], View: r.Query["view"], GroupBy: r.Query["group_by"],
			}, r.List)
		},
		"search.models": func(ctx context.Context, r events.Request) (any, error) {
			return s.SearchModels(ctx, r, app.ModelQuery{
				Projects: r.Query["projects"], Name: r.Query["name"], Alias: r.Query["alias"], Tag: r.Query["tag"],
			}, r.List)
		},
		"compare.runs": func(ctx context.Context, r events.Request) (any, error) {
			return s.CompareRuns(ctx, r, r.Query["ids"])
		},
	}
}
