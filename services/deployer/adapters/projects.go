package adapters

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/deployer/app"
	projects "github.com/mlpanel/mlpanel/services/projects/client"
)

// Projects asks the projects service over NATS (its client package); it
// never reads the projects collection, which that service owns.
type Projects struct{ NC *nats.Conn }

func fromProjects(p projects.Project) app.Project {
	return app.Project{ID: p.ID, Name: p.Name, Status: string(p.Status), InternalURL: p.InternalURL, MlflowURI: p.MlflowURI}
}

// Wake returns the project once its server runs (the projects service
// wakes a sleeping one), within ctx.
func (p Projects) Wake(ctx context.Context, ref string) (app.Project, error) {
	out, err := projects.New(p.NC).Wake(ctx, ref)
	return fromProjects(out), events.AsDomain(err)
}

// StartWaking asks the projects service to start a sleeping project
// (a run of a sleeping project wakes it) without waiting for it.
func (p Projects) StartWaking(ctx context.Context, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return events.AsDomain(projects.New(p.NC).Run(ctx, ref))
}

// Get returns the project by id or name; the projects service's errors
// come back as kinds (errs.NotFound for an unknown project) with its
// messages.
func (p Projects) Get(ctx context.Context, ref string) (app.Project, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := projects.New(p.NC).Get(ctx, ref)
	return fromProjects(out), events.AsDomain(err)
}
