package app

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// Sleeping deployments: a local deployment with min_awake 0 has its model
// server stopped after idle_timeout without a prediction and shows
// `sleeping` (desired state stays running); the gateway's predict proxy
// reports use in batches (Touch) and wakes a sleeping one on the first
// prediction (Wake), holding that request until the server answers.

// ActivitySubject is where the gateway reports predictions per deployment.
const ActivitySubject = "mlpanel.deployer.activity"

// Touch resets the idle clocks of the deployments a gateway saw used; busy
// ones still serve a prediction and may not sleep before the next report.
func (s *Service) Touch(rep activity.Report) {
	now := s.now()
	for _, id := range rep.IDs {
		s.rt.Get(id).idle.Touch(now)
	}
	for _, id := range rep.Busy {
		s.rt.Get(id).idle.Busy(now.Add(2 * activity.Every))
	}
}

// sleepIfIdle puts a running deployment unused for its idle timeout to
// sleep and reports true, or asks to look again when it would be due.
// The caller holds the lock.
func (s *Service) sleepIfIdle(ctx context.Context, d *domain.Deployment, r *runtime) (bool, error) {
	timeout := d.Idle()
	// Deployments of type local sleep whatever runtime runs their server
	// (a process here, a Nomad job, a Kubernetes Deployment); a cloud
	// instance does not: its start takes minutes.
	if timeout <= 0 || d.Status != domain.StatusRunning || r.srv == nil || d.Type != domain.TypeLocal {
		return false, nil
	}
	if wait := r.idle.Due(timeout).Sub(s.now()); wait > 0 {
		if r.requeue == 0 || wait < r.requeue {
			r.requeue = wait
		}
		return false, nil
	}
	srv := r.srv
	d.Status, d.Stage, d.Pid, d.PidStart = domain.StatusSleeping, "", 0, 0
	d.Host, d.Port, d.URL = "", 0, ""
	d.SleepReason = fmt.Sprintf("no prediction for %s (idle_timeout; min_awake 0)", timeout)
	s.log.Info("deployment sleeping", "deployment", d.ID, "reason", d.SleepReason)
	if err := s.rec.Save(ctx, d, string(domain.StatusSleeping)); err != nil {
		return true, err
	}
	s.background(d.ID, r, nil, func(bctx context.Context) error { return srv.Stop(bctx) }, func(ctx context.Context, cur *domain.Deployment, err error) error {
		if err != nil {
			s.log.Warn("stopping a sleeping model server", "deployment", cur.ID, "err", err)
		}
		r.srv = nil
		return nil
	})
	return true, nil
}

// wakePoll is how often a wake looks whether the server answers yet.
const wakePoll = 100 * time.Millisecond

// Wake returns the deployment once its model server answers, starting it
// first if it sleeps and waiting for it if it starts; concurrent wakes
// start it once. A server that does not come up answers 503 with its log
// tail, a stopped deployment 409.
func (s *Service) Wake(ctx context.Context, id string) (domain.Deployment, error) {
	// The caller holds its prediction this long, whatever the NATS
	// handler's own deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StartTimeout)
	defer cancel()
	for {
		d, err := s.withDeployment(ctx, id, func(d *domain.Deployment) error {
			r := s.rt.Get(d.ID)
			r.idle.Touch(s.now())
			switch {
			case d.DesiredState != domain.DesiredRunning:
				return errs.Conflictf("deployment %s is %s, not running: start it with PUT /deployments/%s/run", d.ID, d.Status, d.ID)
			case d.Status == domain.StatusFailed:
				return errs.Unavailablef("deployment %s failed: %s", d.ID, d.Error)
			case d.Status == domain.StatusSleeping && !r.busy && r.srv == nil:
				d.Status, d.SleepReason, d.Error = domain.StatusStarting, "", ""
				r.crashes.Reset()
				r.waitUntil = time.Time{}
				if err := s.rec.Save(ctx, d, "waking"); err != nil {
					return err
				}
				return s.converge(ctx, d)
			case d.Status == domain.StatusStarting && r.srv == nil && !r.busy && r.crashes.Count > 0:
				// It crashed while starting and backs off: the caller
				// gets the reason now instead of a hang.
				return s.unavailable(d, d.Error)
			}
			return nil
		})
		if err != nil || d.Status == domain.StatusRunning {
			return d, err
		}
		select {
		case <-ctx.Done():
			return domain.Deployment{}, s.unavailable(&d, fmt.Sprintf("its model server did not answer within %s", s.cfg.StartTimeout))
		case <-time.After(wakePoll):
		}
	}
}

// unavailable is the 503 of a wake that did not work, with the log tail.
func (s *Service) unavailable(d *domain.Deployment, reason string) error {
	msg := fmt.Sprintf("deployment %s did not wake: %s", d.ID, reason)
	if b := s.backends[d.Type]; b != nil {
		if tail, _ := proc.Tail(b.LogFile(*d), 20); strings.TrimSpace(tail) != "" {
			msg += "; last log lines:\n" + strings.TrimSpace(tail)
		}
	}
	return errs.Unavailablef("%s", msg)
}

// idleInput parses create's idle_timeout and min_awake (forms send
// numbers as text) onto d.
func idleInput(d *domain.Deployment, idle string, minAwake FlexString) error {
	var idlep *string
	var awake *int
	if strings.TrimSpace(idle) != "" {
		idlep = &idle
	}
	if m := strings.TrimSpace(string(minAwake)); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil {
			return fmt.Errorf("invalid min_awake %q: %s", m, domain.IdleRule)
		}
		awake = &n
	}
	return d.SetIdle(idlep, awake)
}

// UpdateInput changes how a deployment sleeps; nil fields stay.
type UpdateInput struct {
	IdleTimeout *string     `json:"idle_timeout"`
	MinAwake    *FlexString `json:"min_awake"` // forms send it as text
}

// Update applies idle_timeout and min_awake. A sleeping deployment that
// may no longer sleep wakes.
func (s *Service) Update(ctx context.Context, id string, in UpdateInput) (domain.Deployment, error) {
	if in.IdleTimeout == nil && in.MinAwake == nil {
		return domain.Deployment{}, errs.Invalidf("nothing to change: give idle_timeout and/or min_awake (%s)", domain.IdleRule)
	}
	var awake *int
	if in.MinAwake != nil {
		n, err := strconv.Atoi(strings.TrimSpace(string(*in.MinAwake)))
		if err != nil {
			return domain.Deployment{}, errs.Invalidf("invalid min_awake %q: %s", *in.MinAwake, domain.IdleRule)
		}
		awake = &n
	}
	return s.withDeployment(ctx, id, func(d *domain.Deployment) error {
		if err := d.SetIdle(in.IdleTimeout, awake); err != nil {
			return errs.AsInvalid(err)
		}
		if d.Status == domain.StatusSleeping && d.Idle() == 0 {
			d.Status, d.SleepReason = domain.StatusStarting, ""
			if err := s.rec.Save(ctx, d, "waking"); err != nil {
				return err
			}
			return s.converge(ctx, d)
		}
		return s.rec.Save(ctx, d, "updated")
	})
}
