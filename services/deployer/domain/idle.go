package domain

import (
	"fmt"
	"strings"
	"time"
)

// StatusSleeping is a local deployment that should run (desired state
// running) whose model server was stopped because no prediction came for
// its idle_timeout; the next predict wakes it.
const StatusSleeping Status = "sleeping"

// IdleRule is the rule of a deployment's idle_timeout and min_awake, in
// words for errors. min_awake follows KServe's minReplicas: 1 keeps a
// model server up always, 0 lets it scale to zero when idle.
const IdleRule = "idle_timeout is a duration such as 90s, 15m or 2h between 1s and 720h, or 0 or empty to never sleep; " +
	"min_awake is 1 (a model server always runs; the default without idle_timeout) or 0 (it sleeps after idle_timeout; the default with one)"

// MaxIdleTimeout bounds an idle timeout; 0 says "never" plainly.
const MaxIdleTimeout = 720 * time.Hour

// ParseIdleTimeout checks an idle_timeout; 0 means the deployment never
// sleeps.
func ParseIdleTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if len(s) > 32 {
		return 0, fmt.Errorf("invalid idle_timeout: longer than 32 characters: %s", IdleRule)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second || d > MaxIdleTimeout {
		return 0, fmt.Errorf("invalid idle_timeout %q: %s", s, IdleRule)
	}
	return d, nil
}

// SetIdle applies a caller's idle_timeout and min_awake (nil: not given)
// and checks that they agree: a deployment sleeps only when it may run
// no model server (min_awake 0) and has an idle_timeout to wait.
func (d *Deployment) SetIdle(idleTimeout *string, minAwake *int) error {
	idle, awake := d.IdleTimeout, d.MinAwake
	if idleTimeout != nil {
		idle = strings.TrimSpace(*idleTimeout)
	}
	if minAwake != nil {
		if *minAwake != 0 && *minAwake != 1 {
			return fmt.Errorf("invalid min_awake %d: a local deployment runs one model server, so %s", *minAwake, IdleRule)
		}
		awake = minAwake
	}
	timeout, err := ParseIdleTimeout(idle)
	if err != nil {
		return err
	}
	switch {
	case timeout > 0 && d.Type != TypeLocal:
		return fmt.Errorf("idle_timeout: only local deployments sleep; a %s deployment's instance runs until it is stopped", d.Type)
	case timeout > 0 && awake != nil && *awake == 1:
		return fmt.Errorf("min_awake 1 keeps the model server always running, so idle_timeout %q would never apply: give min_awake 0, or idle_timeout 0", idle)
	case timeout == 0 && awake != nil && *awake == 0:
		return fmt.Errorf("min_awake 0 lets the model server sleep, which needs an idle_timeout (e.g. \"15m\") to know when: %s", IdleRule)
	}
	if idle == "0" {
		idle = ""
	}
	d.IdleTimeout, d.MinAwake = idle, awake
	return nil
}

// Idle is how long the deployment may go without a prediction before
// its model server sleeps; 0 never.
func (d Deployment) Idle() time.Duration {
	t, err := ParseIdleTimeout(d.IdleTimeout)
	if err != nil || d.Awake() != 0 {
		return 0
	}
	return t
}

// Awake is min_awake: as given, else 0 with an idle_timeout and 1
// without.
func (d Deployment) Awake() int {
	if d.MinAwake != nil {
		return *d.MinAwake
	}
	if t, err := ParseIdleTimeout(d.IdleTimeout); err == nil && t > 0 {
		return 0
	}
	return 1
}
