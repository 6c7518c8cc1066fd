package gateway

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	deployer "github.com/mlpanel/mlpanel/services/deployer/client"
	projects "github.com/mlpanel/mlpanel/services/projects/client"
)

// deploymentOwners finds the project that owns each deployment, so every
// /deployments/{id} call is authorised on that project. It remembers only
// the deployment's project id: a deployment never changes project and
// its id is never given to another (ids are a sequence and deleted
// deployments keep theirs), so that never goes stale; the project itself
// comes from the gateway's one project resolver, which follows project
// events. A deleted deployment is still refused by the deployer itself.
type deploymentOwners struct {
	deployer deployer.Client
	projects *projects.Resolver
	mu       sync.Mutex
	m        map[string]string
}

func newDeploymentOwners(d deployer.Client, p *projects.Resolver) *deploymentOwners {
	return &deploymentOwners{deployer: d, projects: p, m: map[string]string{}}
}

// project is the project that owns deployment id; the deployer's own 404
// when there is no such deployment or its project is gone.
func (o *deploymentOwners) project(ctx context.Context, id string) (projectInfo, error) {
	o.mu.Lock()
	owner, ok := o.m[id]
	o.mu.Unlock()
	if !ok {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := o.deployer.Get(ctx, id)
		cancel()
		if err != nil {
			return projectInfo{}, err
		}
		if d.ProjectID == "" {
			return projectInfo{}, deploymentNotFound(id) // nothing to authorise on: hide it
		}
		owner = d.ProjectID
		o.mu.Lock()
		o.m[id] = owner
		o.mu.Unlock()
	}
	p, err := o.projects.Get(ctx, owner)
	if events.StatusOf(err) == http.StatusNotFound {
		return projectInfo{}, deploymentNotFound(id) // its project is gone, and with it the deployment
	}
	return p, err
}
