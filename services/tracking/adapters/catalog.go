package adapters

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/app"
)

// Catalog lists projects from the projects service for searches across
// projects. The projects service decides what a caller may view (the
// projects they created and those shared with them), so the list is
// asked for with the caller's identity and restriction as the gateway
// sent them, never widened here.
type Catalog struct {
	nc      *nats.Conn
	timeout time.Duration
}

// NewCatalog returns the adapter.
func NewCatalog(nc *nats.Conn, timeout time.Duration) *Catalog {
	return &Catalog{nc: nc, timeout: timeout}
}

// Visible lists the projects the caller of r may view, every status.
func (c *Catalog) Visible(ctx context.Context, r events.Request) ([]app.Project, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req := events.Request{Caller: r.Caller, CallerID: r.CallerID, CallerSince: r.CallerSince,
		Restricted: r.Restricted, Visible: r.Visible}
	var out events.List[app.Project]
	if err := events.Call(ctx, c.nc, events.ControlSubject("projects", "list"), req, &out); err != nil {
		return nil, events.AsDomain(err)
	}
	return out.Items, nil
}
