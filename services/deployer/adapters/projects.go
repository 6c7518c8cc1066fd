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

// Get returns the project by id or name; the projects service's errors
// (404 for an unknown project) come back as they are.
func (p Projects) Get(ctx context.Context, ref string) (app.Project, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out app.Project
	err := events.Call(ctx, p.NC, events.ControlPrefix+".projects.get",
		events.Request{Path: map[string]string{"id": ref}}, &out)
	return out, err
}
