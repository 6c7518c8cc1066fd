package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
)

// Sleeping deployments: predictions keep a deployment's idle clock (in
// batches, as for projects), and the first prediction to a sleeping one
// is held while the deployer wakes it.

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
	var ep deployEndpoint
	if err := events.Call(ctx, p.g.nc, "mlpanel.deployer.wake", events.Request{Path: map[string]string{"id": id}}, &ep); err != nil {
		return ep, err
	}
	p.mu.Lock()
	p.cache[id] = ep
	p.mu.Unlock()
	return ep, nil
}
