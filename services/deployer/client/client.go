// Package client is the deployer's NATS contract for the code that calls
// it (the gateway, the projects service, tests): its subjects, reply
// types and one method per operation they use.
package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// Service is the deployer's NATS name and queue group.
const Service = "deployer"

// Subject is the request/reply subject of one operation:
// mlpanel.deployer.<op>.
func Subject(op string) string { return events.ControlSubject(Service, op) }

// Deployment is the deployer's entity, as its replies carry it.
type Deployment = domain.Deployment

// Client calls the deployer. Errors are *events.Error with the service's
// status (404 for an unknown deployment) or the transport's.
type Client struct{ nc *nats.Conn }

// New returns a client on nc.
func New(nc *nats.Conn) Client { return Client{nc} }

// Get returns deployment id.
func (c Client) Get(ctx context.Context, id string) (Deployment, error) {
	var d Deployment
	err := events.CallIdempotent(ctx, c.nc, Subject("get"), events.Request{Path: map[string]string{"id": id}}, &d)
	return d, err
}

// List returns one page of deployments as req asks (query filters such
// as project_id, list params, what a restricted caller may see).
func (c Client) List(ctx context.Context, req events.Request) (events.List[Deployment], error) {
	var l events.List[Deployment]
	err := events.CallIdempotent(ctx, c.nc, Subject("list"), req, &l)
	return l, err
}

// Wake starts sleeping deployment id and returns it once its model server
// answers; ctx bounds the wait (the deployer's start timeout at most).
func (c Client) Wake(ctx context.Context, id string) (Deployment, error) {
	var d Deployment
	err := events.Call(ctx, c.nc, Subject("wake"), events.Request{Path: map[string]string{"id": id}}, &d)
	return d, err
}

// Activity reports the deployments that served predictions (their idle
// clocks restart) and those still serving one.
func (c Client) Activity(ctx context.Context, r activity.Report) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding prediction activity: %w", err)
	}
	return events.Call(ctx, c.nc, Subject("activity"), events.Request{Body: body}, nil)
}
