// Package adapters connects the tracking use cases to the rest of the
// panel: projects are read from the projects service over NATS.
package adapters

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/services/tracking/app"
)

// ProjectsSubject is the projects service's get operation.
var ProjectsSubject = events.ControlSubject("projects", "get")

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
	p.activity = activity.New(func(ctx context.Context, r activity.Report) error {
		body, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encoding activity report: %w", err)
		}
		return events.Call(ctx, nc, activity.Subject, events.Request{Body: body}, nil)
	}, log)
	return p
}

// Run reports the projects used until ctx ends.
func (p *Projects) Run(ctx context.Context) { p.activity.Run(ctx) }

// Used counts a use of project id towards keeping it awake.
func (p *Projects) Used(id string) { p.activity.Touch(id) }

// Wake waits for the project's server, waking it first if it sleeps; the
// caller's own deadline (the tracking operation's) bounds the wait.
func (p *Projects) Wake(ctx context.Context, ref string) (app.Project, error) {
	var out app.Project
	err := events.Call(ctx, p.nc, events.ControlSubject("projects", "wake"), events.Request{Path: map[string]string{"id": ref}}, &out)
	return out, err
}

// Get returns the project with id or name ref. The projects service's
// errors (404 unknown project, 400 bad reference) pass through as they are.
func (p *Projects) Get(ctx context.Context, ref string) (app.Project, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var out app.Project
	err := events.Call(ctx, p.nc, ProjectsSubject, events.Request{Path: map[string]string{"id": ref}}, &out)
	return out, err
}
