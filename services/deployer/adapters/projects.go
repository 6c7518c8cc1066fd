package adapters

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/deployer/app"
)

// Projects asks the projects service over NATS; it never reads the
// projects collection, which that service owns.
type Projects struct{ NC *nats.Conn }

// Wake returns the project once its server runs (the projects service
// wakes a sleeping one), within ctx.
func (p Projects) Wake(ctx context.Context, ref string) (app.Project, error) {
	var out app.Project
	err := events.Call(ctx, p.NC, events.ControlPrefix+".projects.wake",
		events.Request{Path: map[string]string{"id": ref}}, &out)
	return out, events.AsDomain(err)
}

// StartWaking asks the projects service to start a sleeping project
// (a run of a sleeping project wakes it) without waiting for it.
func (p Projects) StartWaking(ctx context.Context, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return events.AsDomain(events.Call(ctx, p.NC, events.ControlPrefix+".projects.run",
		events.Request{Path: map[string]string{"id": ref}}, nil))
}

// Get returns the project by id or name; the projects service's errors
// come back as kinds (errs.NotFound for an unknown project) with its
// messages.
func (p Projects) Get(ctx context.Context, ref string) (app.Project, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out app.Project
	err := events.Call(ctx, p.NC, events.ControlPrefix+".projects.get",
		events.Request{Path: map[string]string{"id": ref}}, &out)
	return out, events.AsDomain(err)
}
