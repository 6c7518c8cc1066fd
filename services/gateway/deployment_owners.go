package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// deploymentOwners remembers which project owns each deployment, so every
// /deployments/{id} call is authorised on that project without asking the
// deployer each time. A deployment never changes project and its id is
// never given to another (ids are a sequence and deleted deployments
// keep theirs), so an entry never goes stale; a deleted deployment is
// still refused by the deployer itself.
type deploymentOwners struct {
	nc *nats.Conn
	mu sync.Mutex
	m  map[string]string
}

func newDeploymentOwners(nc *nats.Conn) *deploymentOwners {
	return &deploymentOwners{nc: nc, m: map[string]string{}}
}

// project is the id of the project that owns deployment id; the deployer's
// own 404 when there is no such deployment.
func (o *deploymentOwners) project(ctx context.Context, id string) (string, error) {
	o.mu.Lock()
	p, ok := o.m[id]
	o.mu.Unlock()
	if ok {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d struct {
		ID        string `json:"id"`
		ProjectID string `json:"project_id"`
	}
	if err := events.CallIdempotent(ctx, o.nc, "mlpanel.deployer.get", events.Request{Path: map[string]string{"id": id}}, &d); err != nil {
		return "", err
	}
	if d.ProjectID == "" {
		return "", deploymentNotFound(id) // nothing to authorise on: hide it
	}
	o.mu.Lock()
	o.m[id] = d.ProjectID
	o.mu.Unlock()
	return d.ProjectID, nil
}
