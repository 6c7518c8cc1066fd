package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
)

// Sleeping deployments: predictions keep a deployment's idle clock (in
// batches, as for projects), and the first prediction to a sleeping one
// is held while the deployer wakes it.

func init() { extraRoutes = append(extraRoutes, deploymentIdleRoutes()...) }

// deploymentIdleRoutes change how a deployment sleeps.
func deploymentIdleRoutes() []route {
	return []route{
		{http.MethodPatch, "/deployments/:id", "mlpanel.deployer.update", http.StatusOK, false},
	}
}

func newDeployActivity(g *Gateway) *activity.Tracker {
	return activity.New(func(ctx context.Context, r activity.Report) error {
		body, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encoding prediction activity: %w", err)
		}
		return events.Call(ctx, g.nc, "mlpanel.deployer.activity", events.Request{Body: body}, nil)
	}, g.log)
}

// deployWakeTimeout is how long a prediction to a sleeping deployment is
// held: the deployer's MLPANEL_DEPLOY_START_TIMEOUT, which bounds the wake
// there, and a margin for the answer.
func deployWakeTimeout() time.Duration {
	var r conf.Reader
	return r.Duration("DEPLOY_START_TIMEOUT", 3*time.Minute) + 5*time.Second
}

// wakeDeployment asks the deployer to wake deployment id and waits until
// its model server answers; one that cannot start is a 503 with its log
// tail.
func (p *predictProxy) wakeDeployment(ctx context.Context, id string) (deployEndpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, p.wakeTimeout)
	defer cancel()
	var ep deployEndpoint
	if err := events.Call(ctx, p.g.nc, "mlpanel.deployer.wake", events.Request{Path: map[string]string{"id": id}}, &ep); err != nil {
		return ep, err
	}
	p.mu.Lock()
	p.cache[id] = ep
	p.mu.Unlock()
	return ep, nil
}
