package app

import (
	"context"
	"fmt"
	"regexp"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

var numericID = regexp.MustCompile(`^[0-9]+$`)

// Find resolves a project by id or, since names start with a letter, by name.
func (s *Service) Find(ctx context.Context, ref string) (domain.Project, error) {
	if ref == "" {
		return domain.Project{}, errs.Invalidf("a project id or name is required")
	}
	var (
		p   domain.Project
		err error
	)
	if numericID.MatchString(ref) {
		p, err = s.store.Get(ctx, ref)
	} else {
		p, err = s.store.GetByName(ctx, ref)
	}
	if err != nil {
		return domain.Project{}, storeErr(ref, err)
	}
	return p, nil
}

var sortKeys = map[string]func(a, b domain.Project) bool{
	"id":        func(a, b domain.Project) bool { return a.Seq < b.Seq },
	"name":      func(a, b domain.Project) bool { return a.Name < b.Name },
	"status":    func(a, b domain.Project) bool { return a.Status < b.Status },
	"port":      func(a, b domain.Project) bool { return a.Port < b.Port },
	"createdAt": func(a, b domain.Project) bool { return a.CreatedAt.Before(b.CreatedAt) },
	"updatedAt": func(a, b domain.Project) bool { return a.UpdatedAt.Before(b.UpdatedAt) },
}

// List returns one page of projects. A team has tens of projects, not
// millions, so sorting in memory keeps the store interface small.
func (s *Service) List(ctx context.Context, r events.Request) (events.List[domain.Project], error) {
	lp, status := r.List, r.Query["status"]
	// Present means a filter, so status= (empty) is no status either: an
	// unknown one would silently list nothing.
	if _, given := r.Query["status"]; given {
		if _, err := domain.ParseStatus(status); err != nil {
			return events.List[domain.Project]{}, errs.Invalidf("%v", err)
		}
	}
	sortKey := lp.Sort
	if sortKey == "" {
		sortKey = "id"
	}
	less, ok := sortKeys[sortKey]
	if !ok {
		return events.List[domain.Project]{}, errs.Invalidf("cannot sort projects by %q: use one of id, name, status, port, createdAt, updatedAt", lp.Sort)
	}
	all, err := s.store.All(ctx)
	if err != nil {
		return events.List[domain.Project]{}, fmt.Errorf("listing projects: %w", err)
	}
	kept := all[:0]
	for _, p := range all {
		if (status == "" || string(p.Status) == status) && r.Sees(p.ID, events.Creator{ID: p.CreatedByID, Name: p.CreatedBy, At: p.CreatedAt}) {
			kept = append(kept, p)
		}
	}
	all = kept
	return events.Page(all, lp, less), nil
}

// Health is the answer of healthcheck and ping.
type Health struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Pid    int    `json:"pid,omitempty"`
	Port   int    `json:"port"`
}

// Healthcheck reports whether the server process is alive (the original's
// healthcheck: 400 when it is not started).
func (s *Service) Healthcheck(ctx context.Context, ref string) (Health, error) {
	p, err := s.Find(ctx, ref)
	if err != nil {
		return Health{}, err
	}
	srv := s.rt.Get(p.ID).srv
	if srv == nil || !srv.Observe(ctx).Alive {
		return Health{}, errs.Invalidf("the tracking server of project %s is not running (status %s): start it with PUT /projects/%s/run", p.Name, p.Status, p.ID)
	}
	return Health{ID: p.ID, Status: "alive", Pid: srv.Ref().Pid, Port: p.Port}, nil
}

// Ping reports whether the tracking server answers HTTP.
func (s *Service) Ping(ctx context.Context, ref string) (Health, error) {
	p, err := s.Find(ctx, ref)
	if err != nil {
		return Health{}, err
	}
	if !s.runtime.Healthy(ctx, p) {
		return Health{}, errs.Invalidf("the tracking server of project %s does not answer on port %d (status %s)", p.Name, p.Port, p.Status)
	}
	return Health{ID: p.ID, Status: "ok", Port: p.Port}, nil
}

// Logs is the tail of a tracking server's log.
type Logs = proc.Logs

// Logs returns the last n lines of the project's tracking server log;
// the endpoint bounds n.
func (s *Service) Logs(ctx context.Context, ref string, n int) (Logs, error) {
	p, err := s.Find(ctx, ref)
	if err != nil {
		return Logs{}, err
	}
	text, err := s.runtime.Logs(ctx, p, n)
	if err != nil {
		return Logs{}, fmt.Errorf("reading the log of project %s: %w", p.ID, err)
	}
	return proc.LogsOf(p.ID, text), nil
}
