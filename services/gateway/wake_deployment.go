package gateway

import (
	"context"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	deployer "github.com/mlpanel/mlpanel/services/deployer/client"
)

// Sleeping deployments: predictions keep a deployment's idle clock (in
// batches, as for projects), and the first prediction to a sleeping one
// is held while the deployer wakes it.

func newDeployActivity(g *Gateway) *activity.Tracker {
	return activity.New(deployer.New(g.nc).Activity, g.log)
}

// deployWakeTimeout is how long a prediction to a sleeping deployment is
// held: the deployer's MLPANEL_DEPLOY_START_TIMEOUT, which bounds the wake
// there, and a margin for the answer.
func (c Config) deployWakeTimeout() time.Duration {
	t := c.DeployStartTimeout
	if t <= 0 { // a Config built in code, not by ConfigFromEnv
		t = 3 * time.Minute
	}
	return t + 5*time.Second
}

// wakeDeployment asks the deployer to wake deployment id and waits until
// its model server answers; one that cannot start is a 503 with its log
// tail.
func (p *predictProxy) wakeDeployment(ctx context.Context, id string) (deployEndpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, p.wakeTimeout)
	defer cancel()
	d, err := deployer.New(p.g.nc).Wake(ctx, id)
	if err != nil {
		return deployEndpoint{}, err
	}
	ep := endpointOf(d)
	p.mu.Lock()
	p.cache[id] = ep
	p.mu.Unlock()
	return ep, nil
}
