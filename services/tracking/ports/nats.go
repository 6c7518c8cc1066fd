// Package ports exposes the tracking use cases as NATS micro endpoints on
// mlpanel.tracking.<entity>.<operation>.
package ports

import (
	"context"
	"maps"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/app"
)

// Service is the NATS service name; instances share the queue group.
const Service = "tracking"

// Operations are the endpoints by subject suffix (after mlpanel.tracking.).
func Operations(svc *app.Service) map[string]events.Operation {
	return map[string]events.Operation{
		"experiments.list": func(ctx context.Context, r events.Request) (any, error) {
			return svc.ListExperiments(ctx, app.ExperimentQuery{
				Project: r.Param("project_id"), View: r.Query["view"], Filter: r.Query["filter"],
			}, r.List)
		},
		"experiments.create": func(ctx context.Context, r events.Request) (any, error) {
			var in app.ExperimentInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			return svc.CreateExperiment(ctx, project(r, in.ProjectID), in, r.Caller)
		},
		"experiments.get":     byID(svc.GetExperiment),
		"experiments.delete":  byID(svc.DeleteExperiment),
		"experiments.restore": byID(svc.RestoreExperiment),

		"runs.list": func(ctx context.Context, r events.Request) (any, error) {
			return svc.ListRuns(ctx, app.RunQuery{
				Project: r.Param("project_id"), ExperimentID: r.Query["experiment_id"],
				Filter: r.Query["filter"], OrderBy: r.Query["order_by"], View: r.Query["view"],
			}, r.List)
		},
		"runs.check-filter": func(_ context.Context, r events.Request) (any, error) {
			if err := svc.CheckRunFilter(r.Query["filter"]); err != nil {
				return nil, err
			}
			return struct{}{}, nil
		},
		"runs.get":     byID(svc.GetRun),
		"runs.delete":  byID(svc.DeleteRun),
		"runs.restore": byID(svc.RestoreRun),
		"runs.metric-history": func(ctx context.Context, r events.Request) (any, error) {
			return svc.MetricHistory(ctx, r.Param("project_id"), r.Param("id"), r.Param("key"), r.List)
		},

		"artifacts.list": func(ctx context.Context, r events.Request) (any, error) {
			return svc.ListArtifacts(ctx, r.Param("project_id"), r.Param("run_id"), r.Param("path"), r.List)
		},
		"artifacts.locate": func(ctx context.Context, r events.Request) (any, error) {
			return svc.LocateArtifact(ctx, r.Param("project_id"), r.Param("run_id"), r.Param("path"))
		},

		"registered-models.list": func(ctx context.Context, r events.Request) (any, error) {
			return svc.ListRegisteredModels(ctx, r.Param("project_id"), r.Query["filter"], r.List)
		},
		"registered-models.create": func(ctx context.Context, r events.Request) (any, error) {
			var in app.ModelInput
			if err := r.DecodeBody(&in); err != nil {
				return nil, err
			}
			return svc.CreateRegisteredModel(ctx, project(r, in.ProjectID), in)
		},
		"registered-models.get":    byName(svc.GetRegisteredModel),
		"registered-models.delete": byName(svc.DeleteRegisteredModel),

		"model-versions.list": func(ctx context.Context, r events.Request) (any, error) {
			return svc.ListModelVersions(ctx, r.Param("project_id"), r.Param("model_id"), r.List)
		},
		"model-versions.get":    byVersion(svc.GetModelVersion),
		"model-versions.delete": byVersion(svc.DeleteModelVersion),
		"model-versions.set-alias": func(ctx context.Context, r events.Request) (any, error) {
			return svc.SetAlias(ctx, r.Param("project_id"), r.Param("model_id"), r.Param("version"), r.Param("alias"))
		},
		"model-versions.remove-alias": func(ctx context.Context, r events.Request) (any, error) {
			return svc.RemoveAlias(ctx, r.Param("project_id"), r.Param("model_id"), r.Param("version"), r.Param("alias"))
		},
	}
}

// Register adds the tracking endpoints (and extra groups of them) to nc
// and returns the micro service.
func Register(nc *nats.Conn, svc *app.Service, version string, timeout time.Duration, extra []map[string]events.Operation, opts ...events.ServiceOption) (micro.Service, error) {
	ops := Operations(svc)
	for _, e := range extra {
		maps.Copy(ops, e)
	}
	return events.AddService(nc, Service, version,
		"Experiments, runs, artifacts and model registry of every running project's MLflow", timeout, ops, opts...)
}

// project is the project_id of the query, or else of the body (forms
// sent it as a field).
func project(r events.Request, fromBody string) string {
	if p := r.Param("project_id"); p != "" {
		return p
	}
	return fromBody
}

func byID[T any](fn func(ctx context.Context, project, id string) (T, error)) events.Operation {
	return func(ctx context.Context, r events.Request) (any, error) {
		return fn(ctx, r.Param("project_id"), r.Param("id"))
	}
}

func byName[T any](fn func(ctx context.Context, project, name string) (T, error)) events.Operation {
	return func(ctx context.Context, r events.Request) (any, error) {
		return fn(ctx, r.Param("project_id"), r.Param("name"))
	}
}

func byVersion[T any](fn func(ctx context.Context, project, model, version string) (T, error)) events.Operation {
	return func(ctx context.Context, r events.Request) (any, error) {
		return fn(ctx, r.Param("project_id"), r.Param("model_id"), r.Param("version"))
	}
}
