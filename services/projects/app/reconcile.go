package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// runtime is what the service knows about a project's server beyond the
// record: the process handle and the crash bookkeeping for backoff.
type runtime struct {
	proc      *proc.Process
	startedAt time.Time
	crashes   proc.Crashes
	checkedAt time.Time // last /health that answered; running servers are probed every healthEvery
	// unanswered counts /health probes of a live server missed in a row.
	unanswered int
	idle       idleState
}

// healthEvery is how often a running server's /health is probed; a dead
// process is noticed at once anyway, and probing every tick would fill
// the server's access log.
const healthEvery = 10 * time.Second

// Supervise converges every project every Interval (or when a use case
// asks) until ctx ends. On the way out it stops every server if
// StopOnExit is set. Call Adopt first.
func (s *Service) Supervise(ctx context.Context) error {
	err := s.ctl.Run(ctx)
	if s.cfg.StopOnExit {
		s.stopAll()
	}
	return err
}

// Adopt takes over the live servers recorded in the store, so a restart of
// the service never starts a second copy or leaves an orphan. It runs
// before the service answers requests.
func (s *Service) Adopt(ctx context.Context) error {
	all, err := s.store.All(ctx)
	if err != nil {
		return fmt.Errorf("loading projects to adopt their servers: %w", err)
	}
	for _, p := range all {
		if p.Pid == 0 {
			continue
		}
		if pr, ok := proc.Adopt(p.Pid, p.PidStart); ok {
			r := s.rt.Get(p.ID)
			r.proc, r.startedAt = pr, s.now()
			r.idle.Touch(s.now()) // its idle clock restarts with the service
			s.log.Info("adopted tracking server", "project", p.ID, "pid", p.Pid)
		}
	}
	return nil
}

// ids lists every project for the controller's resync.
func (s *Service) ids(ctx context.Context) ([]string, error) {
	all, err := s.store.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading projects: %w", err)
	}
	ids := make([]string, len(all))
	for i, p := range all {
		ids[i] = p.ID
	}
	return ids, nil
}

// Reconcile converges one project; the controller holds its lock.
func (s *Service) Reconcile(ctx context.Context, id string) (reconcile.Result, error) {
	p, err := s.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return reconcile.Result{}, nil // deleted meanwhile
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := s.converge(ctx, &p); err != nil {
		return reconcile.Result{}, err
	}
	return s.sleepIfIdle(ctx, &p)
}

// converge moves one project one step towards its desired state and saves
// it if anything changed. The caller holds the project's lock.
func (s *Service) converge(ctx context.Context, p *domain.Project) error {
	r := s.rt.Get(p.ID)
	alive := r.proc != nil && r.proc.Alive()

	if p.DesiredState != domain.DesiredRunning {
		if r.proc != nil {
			if err := r.proc.Stop(s.cfg.StopGrace); err != nil {
				return fmt.Errorf("stopping tracking server of %s: %w", p.ID, err)
			}
			r.proc = nil
		}
		if p.Status == domain.StatusStarting || p.Status == domain.StatusRunning || p.Status == domain.StatusFailed ||
			p.Status == domain.StatusSleeping || p.Pid != 0 {
			p.SleepReason = ""
			p.Status, p.Pid, p.PidStart = domain.StatusTerminated, 0, 0
			return s.rec.Save(ctx, p, "terminated")
		}
		return nil
	}

	if p.Status == domain.StatusFailed {
		return nil // given up; a user's run starts over
	}
	if p.Status == domain.StatusSleeping {
		return nil // the first request wakes it (Wake)
	}

	if alive {
		if (p.Status == domain.StatusRunning || p.Status == domain.StatusUnhealthy) && s.now().Sub(r.checkedAt) < healthEvery {
			return nil
		}
		if s.servers.Healthy(ctx, *p) {
			r.checkedAt, r.unanswered = s.now(), 0
			if s.now().Sub(r.startedAt) > proc.StableAfter {
				r.crashes.Reset()
			}
			if p.Status != domain.StatusRunning {
				r.idle.Touch(s.now()) // the idle clock starts when it answers, however long the start took
				p.Status, p.LastError, p.RanBefore = domain.StatusRunning, "", true
				return s.rec.Save(ctx, p, "running")
			}
			return nil
		}
		if p.Status == domain.StatusStarting && s.now().Sub(r.startedAt) > s.cfg.StartTimeout {
			_ = r.proc.Stop(s.cfg.StopGrace)
			return s.crashed(ctx, p, r, fmt.Sprintf("the tracking server did not answer /health within %s", s.cfg.StartTimeout))
		}
		return s.unanswered(ctx, p, r)
	}

	if r.proc != nil { // it was ours and it died
		_ = r.proc.Stop(s.cfg.StopGrace) // its workers may still hold the port
		r.proc = nil
		return s.crashed(ctx, p, r, "the tracking server exited unexpectedly")
	}

	if !r.crashes.Ready(s.now()) {
		return nil // backing off
	}
	return s.start(ctx, p, r)
}

func (s *Service) start(ctx context.Context, p *domain.Project, r *runtime) error {
	return s.startAs(ctx, p, r, "starting")
}

// startAs starts the server and records change ("starting", "waking").
func (s *Service) startAs(ctx context.Context, p *domain.Project, r *runtime, change string) error {
	if !proc.PortFree(s.cfg.Host, p.Port) {
		return s.crashed(ctx, p, r, fmt.Sprintf("port %d is in use by another program: stop it or delete and re-create the project to get another port", p.Port))
	}
	pr, err := s.servers.Start(*p)
	if reconcile.IsTerminal(err) {
		return s.fail(ctx, p, err.Error())
	}
	if err != nil {
		return s.crashed(ctx, p, r, err.Error())
	}
	r.proc, r.startedAt = pr, s.now()
	r.idle.Touch(s.now())
	p.Status, p.Pid, p.PidStart, p.SleepReason = domain.StatusStarting, pr.Pid, pr.StartTime, ""
	return s.rec.Save(ctx, p, change)
}

// crashed counts a failure: backs off before the next start, and after
// MaxFailures in a row gives up and shows the log tail.
func (s *Service) crashed(ctx context.Context, p *domain.Project, r *runtime, reason string) error {
	wait := r.crashes.Record(s.now())
	p.RestartCount++
	p.Pid, p.PidStart = 0, 0
	tail, _ := proc.Tail(s.servers.LogFile(*p), 20)
	if r.crashes.Count >= s.cfg.MaxFailures {
		p.Status = domain.StatusFailed
		p.LastError = fmt.Sprintf("%s (%d times in a row); last log lines:\n%s", reason, r.crashes.Count, strings.TrimSpace(tail))
		s.log.Warn("tracking server failed", "project", p.ID, "reason", reason)
		return s.rec.Save(ctx, p, "failed")
	}
	p.Status = domain.StatusStarting
	p.LastError = reason
	s.log.Warn("tracking server down, restarting", "project", p.ID, "reason", reason, "attempt", r.crashes.Count, "in", wait)
	return s.rec.Save(ctx, p, "")
}

// fail gives up at once on a start that retrying cannot fix, until a
// user runs the project again.
func (s *Service) fail(ctx context.Context, p *domain.Project, reason string) error {
	p.Status, p.LastError, p.Pid, p.PidStart = domain.StatusFailed, reason, 0, 0
	s.log.Warn("tracking server cannot start", "project", p.ID, "reason", reason)
	return s.rec.Save(ctx, p, "failed")
}

// stopAll stops every server this service knows, in parallel, so a
// shutdown with many projects still ends within seconds.
func (s *Service) stopAll() {
	var stops []func()
	s.rt.Each(func(_ string, r *runtime) {
		if pr := r.proc; pr != nil {
			stops = append(stops, func() {
				if err := pr.Stop(s.cfg.StopGrace); err != nil {
					s.log.Error("stopping tracking server", "pid", pr.Pid, "err", err)
				}
			})
		}
	})
	reconcile.Parallel(stops)
}

// unhealthyAfter is how many /health probes in a row a running server
// may miss before it shows as unhealthy: one slow answer is no verdict.
const unhealthyAfter = 2

// unanswered records a missed /health of a live server: after
// unhealthyAfter in a row a running project is marked unhealthy (with an
// event), so nobody takes a hung server for a working one. The process is
// left alone: it may be busy, and it is running again once it answers.
func (s *Service) unanswered(ctx context.Context, p *domain.Project, r *runtime) error {
	if p.Status != domain.StatusRunning && p.Status != domain.StatusUnhealthy {
		return nil
	}
	r.unanswered++
	if p.Status == domain.StatusUnhealthy || r.unanswered < unhealthyAfter {
		if p.Status == domain.StatusUnhealthy {
			r.checkedAt = s.now() // probe a hung server every healthEvery, not every tick
		}
		return nil
	}
	r.checkedAt = s.now()
	p.Status = domain.StatusUnhealthy
	p.LastError = fmt.Sprintf("the tracking server (pid %d) stopped answering /health; it is running again once it answers", p.Pid)
	s.log.Warn("tracking server unhealthy", "project", p.ID, "pid", p.Pid)
	return s.rec.Save(ctx, p, "unhealthy")
}
