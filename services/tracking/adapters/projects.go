// Package adapters connects the tracking use cases to the rest of the
// panel: projects are read from the projects service over NATS.
package adapters

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/app"
)

// ProjectsSubject is the projects service's get operation.
var ProjectsSubject = events.ControlSubject("projects", "get")

// Projects reads project records from the projects service. It caches
// nothing: a lookup is one local NATS round trip, and a stale status would
// send requests to a stopped server.
type Projects struct {
	nc      *nats.Conn
	timeout time.Duration
}

// NewProjects returns the adapter.
func NewProjects(nc *nats.Conn, timeout time.Duration) *Projects {
	return &Projects{nc: nc, timeout: timeout}
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
