// Package client is the tracking service's NATS contract for the code
// that calls it (the gateway, tests): its subjects, reply types and one
// method per operation they use beyond the gateway's route table.
package client

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/app"
)

// Service is the tracking service's NATS name and queue group.
const Service = "tracking"

// Subject is the request/reply subject of one operation:
// mlpanel.tracking.<entity>.<op>.
func Subject(op string) string { return events.ControlSubject(Service, op) }

// ArtifactLocation is where an artifact's bytes are: the locate
// operation's answer, after it checked the project, the run and the path.
type ArtifactLocation = app.ArtifactLocation

// Client calls the tracking service.
type Client struct{ nc *nats.Conn }

// New returns a client on nc.
func New(nc *nats.Conn) Client { return Client{nc} }

// LocateArtifact resolves the artifact req names (project_id, run_id and
// path in its query).
func (c Client) LocateArtifact(ctx context.Context, req events.Request) (ArtifactLocation, error) {
	var loc ArtifactLocation
	err := events.Call(ctx, c.nc, Subject("artifacts.locate"), req, &loc)
	return loc, err
}

// CheckRunFilter tells whether MLflow would refuse a run filter for its
// bounds or its grammar, without asking (or waking) a project: an error
// of status 400 with MLflow's message when it would, nil when it passes
// or only MLflow's server can tell.
func (c Client) CheckRunFilter(ctx context.Context, filter string) error {
	var ok struct{}
	return events.Call(ctx, c.nc, Subject("runs.check-filter"), events.Request{Query: map[string]string{"filter": filter}}, &ok)
}
