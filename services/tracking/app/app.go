// Package app holds the tracking use cases: each one resolves the project,
// checks that its tracking server runs, and reads or writes MLflow through
// its REST API. Nothing is stored here; MLflow is the only truth.
package app

import (
	"context"
	"log/slog"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// Project is what the tracking service needs to know of a project.
type Project struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	InternalURL string `json:"internalUrl"`
	// Path is the project's folder (its MLflow database is mlflow.db in
	// it unless Backend says otherwise), for DirectReads.
	Path string `json:"path"`
	// Backend is the project's MLflow backend store: "sqlite" (or empty),
	// "postgresql" or "mysql", whose database is Database on the server
	// of MLPANEL_PROJECT_DB_URL or MLPANEL_PROJECT_MYSQL_URL.
	Backend  string `json:"backend,omitempty"`
	Database string `json:"database,omitempty"`
}

// Store names the project's MLflow database for DirectReads: the
// project's folder for SQLite, "<backend>:<database>" for another
// backend; "" when there is none to read.
func (p Project) Store() string {
	switch p.Backend {
	case "", "sqlite":
		return p.Path
	}
	if p.Database == "" {
		return ""
	}
	return p.Backend + ":" + p.Database
}

// StatusRunning is the project status whose tracking server answers.
const StatusRunning = "running"

// Projects finds projects by id or name. It returns errors of a kind
// (pkg/platform/errs) for the known conditions (NotFound unknown project,
// Unavailable no projects service).
type Projects interface {
	Get(ctx context.Context, ref string) (Project, error)
	// Wake returns the project once its server runs, waking it if it
	// sleeps or waiting if it starts; a failed wake is Unavailable.
	Wake(ctx context.Context, ref string) (Project, error)
	// Used resets the project's idle clock (batched, never blocks).
	Used(id string)
}

// Clients makes an MLflow client for a tracking server's base URL.
type Clients func(baseURL string) *mc.Client

// Service is the tracking application.
type Service struct {
	projects Projects
	clients  Clients
	log      *slog.Logger
	now      func() int64 // milliseconds since the epoch
	direct   DirectReads  // nil: every read through MLflow's REST API
	events   Events       // nil: registry writes publish no events
	// signatures: nil, version_created events carry no signature.
	signatures Signatures
}

// New builds the service.
func New(projects Projects, clients Clients, log *slog.Logger, now func() int64) *Service {
	return &Service{projects: projects, clients: clients, log: log, now: now}
}

// target is one resolved, running project and a client for its server.
type target struct {
	p Project
	c *mc.Client
	s *Service
}

// open resolves ref and checks that the project's tracking server runs.
func (s *Service) open(ctx context.Context, ref string) (target, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return target{}, errs.Invalidf(
			"project_id is required: the id or name of a project (see GET /projects)")
	}
	p, err := s.projects.Get(ctx, ref)
	if err != nil {
		return target{}, err
	}
	if p.Status == "sleeping" || p.Status == "starting" {
		// A call that needs the server waits for it instead of failing.
		if p, err = s.projects.Wake(ctx, p.ID); err != nil {
			return target{}, err
		}
	}
	if p.Status != StatusRunning || p.InternalURL == "" {
		return target{}, notRunning(p)
	}
	s.projects.Used(p.ID)
	return target{p: p, c: s.clients(p.InternalURL), s: s}, nil
}

// notRunning says what to do about a project whose tracking server does
// not run; every variant names the call that starts it.
func notRunning(p Project) error {
	switch p.Status {
	case "archived":
		return errs.Conflictf(
			"project %s is archived: restore it with PUT /projects/%s/restore, then start it with PUT /projects/%s/run", p.Name, p.ID, p.ID)
	case "starting":
		return errs.Conflictf(
			"project %s is starting, not running yet: wait until GET /projects/%s says running (start it with PUT /projects/%s/run if it stops)", p.Name, p.ID, p.ID)
	}
	return errs.Conflictf(
		"project %s is %s, not running: start it with PUT /projects/%s/run", p.Name, p.Status, p.ID)
}
