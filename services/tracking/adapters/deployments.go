package adapters

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/app"
)

// Deployments lists deployments from the deployer, for model searches
// that say which versions are served. It asks for all of them, as a
// service: the search keeps only those of projects its caller may view.
type Deployments struct {
	nc      *nats.Conn
	timeout time.Duration
}

// NewDeployments returns the adapter.
func NewDeployments(nc *nats.Conn, timeout time.Duration) *Deployments {
	return &Deployments{nc: nc, timeout: timeout}
}

// All lists every deployment.
func (d *Deployments) All(ctx context.Context) ([]app.Deployment, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var out events.List[app.Deployment]
	if err := events.Call(ctx, d.nc, events.ControlSubject("deployer", "list"), events.Request{}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}
