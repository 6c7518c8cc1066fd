// Package adapters connects the tracking use cases to the rest of the
// panel: projects are read from the projects service over NATS.
package adapters

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	projects "github.com/mlpanel/mlpanel/services/projects/client"
	"github.com/mlpanel/mlpanel/services/tracking/app"
)

// Projects reads project records from the projects service. It caches
// nothing: a lookup is one local NATS round trip, and a stale status would
// send requests to a stopped server.
type Projects struct {
	nc       *nats.Conn
	timeout  time.Duration
	activity *activity.Tracker
}

// NewProjects returns the adapter; Run reports the projects used.
func NewProjects(nc *nats.Conn, timeout time.Duration, log *slog.Logger) *Projects {
	p := &Projects{nc: nc, timeout: timeout}
	p.activity = activity.New(projects.New(nc).Activity, log)
	return p
}

func fromProjects(p projects.Project) app.Project {
	return app.Project{ID: p.ID, Name: p.Name, Status: string(p.Status), InternalURL: p.InternalURL, Path: p.Path,
		Backend: string(p.Backend), Database: p.Database}
}

// Run reports the projects used until ctx ends.
func (p *Projects) Run(ctx context.Context) { p.activity.Run(ctx) }

// Used counts a use of project id towards keeping it awake.
func (p *Projects) Used(id string) { p.activity.Touch(id) }

// Wake waits for the project's server, waking it first if it sleeps; the
// caller's own deadline (the tracking operation's) bounds the wait.
func (p *Projects) Wake(ctx context.Context, ref string) (app.Project, error) {
	out, err := projects.New(p.nc).Wake(ctx, ref)
	return fromProjects(out), events.AsDomain(err)
}

// Get returns the project with id or name ref. The projects service's
// errors (404 unknown project, 400 bad reference) come back as kinds
// (events.AsDomain) with the same message, so they answer as they did.
func (p *Projects) Get(ctx context.Context, ref string) (app.Project, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	out, err := projects.New(p.nc).Get(ctx, ref)
	return fromProjects(out), events.AsDomain(err)
}
