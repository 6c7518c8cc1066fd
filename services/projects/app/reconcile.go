package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// serverState is what the service knows about a project's server
// beyond the record: the runtime's handle and the crash bookkeeping for
// backoff.
type serverState struct {
	srv       Server // nil: none runs for this service
	startedAt time.Time
	crashes   proc.Crashes
	restarts  int       // Observation.Restarts already counted
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
// before the service answers requests. Every project is asked about: a
// cluster runtime may hold a server for a project whose record says it
// stopped (the service died between the two), which converge removes.
func (s *Service) Adopt(ctx context.Context) error {
	all, err := s.store.All(ctx)
	if err != nil {
		return fmt.Errorf("loading projects to adopt their servers: %w", err)
	}
	for _, p := range all {
		srv, err := s.runtime.Adopt(ctx, p)
		if err != nil {
			return fmt.Errorf("looking for the tracking server of project %s to adopt: %w", p.ID, err)
		}
		if srv == nil {
			continue
		}
		r := s.rt.Get(p.ID)
		r.srv, r.startedAt, r.restarts = srv, s.now(), 0
		r.idle.Touch(s.now()) // its idle clock restarts with the service
		s.log.Info("adopted tracking server", "project", p.ID, "pid", srv.Ref().Pid, "ref", srv.Ref().Name)
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
	var seen Observation
	if r.srv != nil {
		seen = r.srv.Observe(ctx)
	}

	if p.DesiredState != domain.DesiredRunning {
		if r.srv != nil {
			if err := r.srv.Remove(ctx); err != nil {
				return fmt.Errorf("stopping tracking server of %s: %w", p.ID, err)
			}
			r.srv = nil
		}
		if p.Status == domain.StatusStarting || p.Status == domain.StatusRunning || p.Status == domain.StatusFailed ||
			p.Status == domain.StatusSleeping || p.Status == domain.StatusUnhealthy || p.Pid != 0 || p.RuntimeRef != "" {
			p.SleepReason = ""
			p.Status = domain.StatusTerminated
			setRef(p, Ref{})
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

	if r.srv != nil && seen.Alive {
		if done, err := s.observed(ctx, p, r, seen); done || err != nil {
			return err
		}
		if (p.Status == domain.StatusRunning || p.Status == domain.StatusUnhealthy) && s.now().Sub(r.checkedAt) < healthEvery {
			return nil
		}
		if seen.Address != "" && s.runtime.Healthy(ctx, *p) {
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
		if p.Status == domain.StatusStarting && !seen.Waiting && s.now().Sub(r.startedAt) > s.cfg.StartTimeout {
			_ = r.srv.Remove(ctx)
			r.srv = nil
			return s.crashed(ctx, p, r, fmt.Sprintf("the tracking server did not answer /health within %s", s.cfg.StartTimeout))
		}
		return s.unanswered(ctx, p, r)
	}

	if r.srv != nil { // it was ours and it is gone
		_ = r.srv.Remove(ctx) // its workers may still hold the port; a cluster may keep its object
		r.srv = nil
		reason := "the tracking server exited unexpectedly"
		if seen.Reason != "" {
			reason += ": " + seen.Reason
		}
		return s.crashed(ctx, p, r, reason)
	}

	if !r.crashes.Ready(s.now()) {
		return nil // backing off
	}
	return s.start(ctx, p, r)
}

// observed applies what the runtime reports of a live server beyond
// being alive: restarts it made on its own count as crashes, a server
// without an address (being moved) is starting again, and a new address
// is saved and published so the gateway proxies there. It reports
// whether it dealt with this step.
func (s *Service) observed(ctx context.Context, p *domain.Project, r *serverState, seen Observation) (bool, error) {
	if seen.Restarts > r.restarts {
		n := seen.Restarts - r.restarts
		r.restarts = seen.Restarts
		return true, s.restartedBy(ctx, p, r, n, cmp.Or(seen.Reason, "the runtime restarted the tracking server"))
	}
	if seen.Address == "" {
		if p.Status == domain.StatusRunning || p.Status == domain.StatusUnhealthy {
			r.startedAt = s.now()
			p.Status = domain.StatusStarting
			p.LastError = cmp.Or(seen.Reason, "the runtime is moving the tracking server; it has no address yet")
			return true, s.rec.Save(ctx, p, "starting")
		}
		if seen.Waiting {
			// Held back (its volume's node is down): say why, and wait
			// with the start timeout pushed on.
			r.startedAt = s.now()
			if seen.Reason != "" && p.LastError != seen.Reason {
				p.LastError = seen.Reason
				return true, s.rec.Save(ctx, p, "updated")
			}
			return true, nil
		}
		return false, nil // starting: the start timeout applies
	}
	if seen.Address != p.InternalURL {
		s.log.Info("tracking server moved", "project", p.ID, "from", p.InternalURL, "to", seen.Address)
		p.InternalURL = seen.Address
		r.checkedAt = time.Time{} // probe the new address now
		return true, s.rec.Save(ctx, p, "updated")
	}
	return false, nil
}

// restartedBy counts n restarts the runtime made itself as crashes: the
// server is starting again, and after MaxFailures in a row the project
// fails and the server is removed, as a local crash loop would.
func (s *Service) restartedBy(ctx context.Context, p *domain.Project, r *serverState, n int, reason string) error {
	for range n {
		r.crashes.Record(s.now())
	}
	p.RestartCount += n
	r.startedAt = s.now()
	if r.crashes.Count >= s.cfg.MaxFailures {
		if err := r.srv.Remove(ctx); err != nil {
			return fmt.Errorf("removing the crash-looping tracking server of %s: %w", p.ID, err)
		}
		r.srv = nil
		setRef(p, Ref{})
		return s.failWithTail(ctx, p, r, reason)
	}
	p.LastError = reason
	s.log.Warn("tracking server restarted by its runtime", "project", p.ID, "reason", reason, "attempt", r.crashes.Count)
	if p.Status == domain.StatusRunning || p.Status == domain.StatusUnhealthy {
		p.Status = domain.StatusStarting
		return s.rec.Save(ctx, p, "starting")
	}
	return s.rec.Save(ctx, p, "")
}

// setRef records the runtime's handle of the server on p (Ref{}: none).
func setRef(p *domain.Project, ref Ref) {
	p.Pid, p.PidStart, p.RuntimeRef = ref.Pid, ref.PidStart, ref.Name
}

func (s *Service) start(ctx context.Context, p *domain.Project, r *serverState) error {
	return s.startAs(ctx, p, r, "starting")
}

// startAs starts the server and records change ("starting", "waking").
func (s *Service) startAs(ctx context.Context, p *domain.Project, r *serverState, change string) error {
	srv, err := s.runtime.Start(ctx, *p)
	if reconcile.IsTerminal(err) {
		return s.fail(ctx, p, err.Error())
	}
	if err != nil {
		return s.crashed(ctx, p, r, err.Error())
	}
	r.srv, r.startedAt, r.restarts = srv, s.now(), 0
	r.idle.Touch(s.now())
	p.Status, p.SleepReason = domain.StatusStarting, ""
	setRef(p, srv.Ref())
	return s.rec.Save(ctx, p, change)
}

// crashed counts a failure: backs off before the next start, and after
// MaxFailures in a row gives up and shows the log tail.
func (s *Service) crashed(ctx context.Context, p *domain.Project, r *serverState, reason string) error {
	wait := r.crashes.Record(s.now())
	p.RestartCount++
	setRef(p, Ref{})
	if r.crashes.Count >= s.cfg.MaxFailures {
		return s.failWithTail(ctx, p, r, reason)
	}
	p.Status = domain.StatusStarting
	p.LastError = reason
	s.log.Warn("tracking server down, restarting", "project", p.ID, "reason", reason, "attempt", r.crashes.Count, "in", wait)
	return s.rec.Save(ctx, p, "")
}

// failWithTail gives up after MaxFailures crashes in a row and shows the
// server's last log lines.
func (s *Service) failWithTail(ctx context.Context, p *domain.Project, r *serverState, reason string) error {
	tail, _ := s.runtime.Logs(ctx, *p, 20)
	p.Status = domain.StatusFailed
	p.LastError = fmt.Sprintf("%s (%d times in a row); last log lines:\n%s", reason, r.crashes.Count, strings.TrimSpace(tail))
	s.log.Warn("tracking server failed", "project", p.ID, "reason", reason)
	return s.rec.Save(ctx, p, "failed")
}

// fail gives up at once on a start that retrying cannot fix, until a
// user runs the project again.
func (s *Service) fail(ctx context.Context, p *domain.Project, reason string) error {
	p.Status, p.LastError = domain.StatusFailed, reason
	setRef(p, Ref{})
	s.log.Warn("tracking server cannot start", "project", p.ID, "reason", reason)
	return s.rec.Save(ctx, p, "failed")
}

// stopAll stops every server this service knows, in parallel, so a
// shutdown with many projects still ends within seconds.
func (s *Service) stopAll() {
	var stops []func()
	s.rt.Each(func(id string, r *serverState) {
		if srv := r.srv; srv != nil {
			stops = append(stops, func() {
				if err := srv.Stop(context.Background()); err != nil {
					s.log.Error("stopping tracking server", "project", id, "err", err)
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
func (s *Service) unanswered(ctx context.Context, p *domain.Project, r *serverState) error {
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
	p.LastError = "the tracking server stopped answering /health; it is running again once it answers"
	if p.Pid != 0 {
		p.LastError = fmt.Sprintf("the tracking server (pid %d) stopped answering /health; it is running again once it answers", p.Pid)
	}
	s.log.Warn("tracking server unhealthy", "project", p.ID, "pid", p.Pid, "address", p.InternalURL)
	return s.rec.Save(ctx, p, "unhealthy")
}
