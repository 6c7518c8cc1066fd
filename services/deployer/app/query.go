package app

import (
	"context"
	"fmt"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// Get returns a deployment that is not deleted.
func (s *Service) Get(ctx context.Context, id string) (domain.Deployment, error) {
	d, err := s.store.Get(ctx, id)
	if err != nil {
		return domain.Deployment{}, storeErr(id, err)
	}
	if d.Deleted() {
		return domain.Deployment{}, notFound(id)
	}
	return d, nil
}

var sortKeys = map[string]func(a, b domain.Deployment) bool{
	"id":         func(a, b domain.Deployment) bool { return a.Seq < b.Seq },
	"project_id": func(a, b domain.Deployment) bool { return a.ProjectID < b.ProjectID },
	"model_id":   func(a, b domain.Deployment) bool { return a.ModelID < b.ModelID },
	"status":     func(a, b domain.Deployment) bool { return a.Status < b.Status },
	"type":       func(a, b domain.Deployment) bool { return a.Type < b.Type },
	"created_at": func(a, b domain.Deployment) bool { return a.CreatedAt.Before(b.CreatedAt) },
	"updated_at": func(a, b domain.Deployment) bool { return a.UpdatedAt.Before(b.UpdatedAt) },
}

// Filter narrows a list; empty fields match everything.
type Filter struct {
	ProjectID string
	ModelID   string
	Status    *string // nil: any
	Type      *string // nil: any
	// Sees narrows the list for a restricted caller; nil sees everything.
	Sees func(projectID string) bool
}

// List returns one page of the deployments that are not deleted.
func (s *Service) List(ctx context.Context, lp events.ListParams, f Filter) (events.List[domain.Deployment], error) {
	key := lp.Sort
	if key == "" {
		key = "id"
	}
	less, ok := sortKeys[key]
	if !ok {
		return events.List[domain.Deployment]{}, errs.Invalidf("cannot sort deployments by %q: use one of id, project_id, model_id, status, type, created_at, updated_at", lp.Sort)
	}
	// A filter given empty or unknown would silently list nothing.
	if f.Status != nil {
		if _, err := domain.ParseStatus(*f.Status); err != nil {
			return events.List[domain.Deployment]{}, errs.Invalidf("%v", err)
		}
	}
	if f.Type != nil {
		if *f.Type == "" {
			return events.List[domain.Deployment]{}, errs.Invalidf("type=\"\": use local or gcp")
		}
		if _, err := domain.ParseType(*f.Type); err != nil {
			return events.List[domain.Deployment]{}, errs.Invalidf("%v", err)
		}
	}
	if f.ProjectID != "" && !domain.IsVersionNumber(f.ProjectID) {
		// A project's name: deployments record its id.
		p, err := s.projects.Get(ctx, f.ProjectID)
		if err != nil {
			return events.List[domain.Deployment]{}, err
		}
		f.ProjectID = p.ID
	}
	all, err := s.store.All(ctx)
	if err != nil {
		return events.List[domain.Deployment]{}, fmt.Errorf("listing deployments: %w", err)
	}
	kept := all[:0]
	for _, d := range all {
		if d.Deleted() ||
			(f.ProjectID != "" && d.ProjectID != f.ProjectID) ||
			(f.ModelID != "" && d.ModelID != f.ModelID) ||
			(f.Status != nil && string(d.Status) != *f.Status) ||
			(f.Type != nil && string(d.Type) != *f.Type) ||
			(f.Sees != nil && !f.Sees(d.ProjectID)) {
			continue
		}
		kept = append(kept, d)
	}
	return events.Page(kept, lp, less), nil
}

// Health is the answer of ping.
type Health struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	URL    string `json:"url"`
}

// Ping reports whether the model server answers /ping (the original's
// ping: 400 when it does not).
func (s *Service) Ping(ctx context.Context, id string) (Health, error) {
	d, err := s.Get(ctx, id)
	if err != nil {
		return Health{}, err
	}
	srv := s.serverOf(d.ID)
	if srv == nil || !srv.Ready(ctx) {
		return Health{}, errs.Invalidf("the model server of deployment %s does not answer (status %s)", d.ID, d.Status)
	}
	return Health{ID: d.ID, Status: "ok", URL: d.URL}, nil
}

// Schema is the deployed version's signature and input example, read from
// the project's registry, which must be running.
func (s *Service) Schema(ctx context.Context, id string) (ModelSchema, error) {
	d, err := s.Get(ctx, id)
	if err != nil {
		return ModelSchema{}, err
	}
	p, err := s.projects.Get(ctx, d.ProjectID)
	if err != nil {
		return ModelSchema{}, err
	}
	if !p.Running() {
		return ModelSchema{}, errs.Conflictf("project %s is %s: the schema is read from its registry, so start it with PUT /projects/%s/run", p.Name, p.Status, p.ID)
	}
	sc, err := s.registry.Schema(ctx, p.InternalURL, d.ModelID, d.Version)
	if err != nil {
		return ModelSchema{}, err
	}
	sc.ID, sc.ModelID, sc.Version = d.ID, d.ModelID, d.Version
	return sc, nil
}

// Logs is the tail of a deployment's log.
type Logs = proc.Logs

// Logs returns the last n lines of the deployment's log; the endpoint
// bounds n.
func (s *Service) Logs(ctx context.Context, id string, n int) (Logs, error) {
	d, err := s.Get(ctx, id)
	if err != nil {
		return Logs{}, err
	}
	return proc.ReadLogs(d.ID, s.backends[d.Type].LogFile(d), n)
}
