package app

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// idleState is a project's idle clock and its sleep bookkeeping (wakes,
// time asleep), under their own mutex: reports arrive without the
// project's lock.
type idleState struct {
	activity.Clock
	mu          sync.Mutex
	wakes       int
	asleepSince time.Time // zero while awake
	asleep      time.Duration
}

func (i *idleState) slept(now time.Time) {
	i.mu.Lock()
	i.asleepSince = now
	i.mu.Unlock()
}

// woke counts a wake and the time spent asleep before it.
func (i *idleState) woke(now time.Time) {
	i.mu.Lock()
	if !i.asleepSince.IsZero() {
		i.asleep += now.Sub(i.asleepSince)
		i.asleepSince = time.Time{}
	}
	i.wakes++
	i.mu.Unlock()
	i.Reset(now)
}

// idleTimeout is the project's own timeout, or the panel's.
func (s *Service) idleTimeout(p domain.Project) time.Duration {
	if d, ok, err := domain.ParseIdleTimeout(p.IdleTimeout); err == nil && ok {
		return d
	}
	return s.cfg.IdleTimeout
}

// sleepIfIdle puts a running project unused for its idle timeout to
// sleep, or asks to be called again when it would be due. The caller
// holds the project's lock.
func (s *Service) sleepIfIdle(ctx context.Context, p *domain.Project) (reconcile.Result, error) {
	timeout := s.idleTimeout(*p)
	if timeout <= 0 || p.DesiredState != domain.DesiredRunning || p.Status != domain.StatusRunning {
		return reconcile.Result{}, nil
	}
	r := s.rt.Get(p.ID)
	due := r.idle.Due(timeout)
	if wait := due.Sub(s.now()); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	return reconcile.Result{}, s.sleep(ctx, p, r, fmt.Sprintf("no request for %s (idle timeout)", timeout))
}

// sleep stops the server of a project that stays wanted. The caller
// holds the project's lock.
func (s *Service) sleep(ctx context.Context, p *domain.Project, r *serverState, reason string) error {
	if r.srv != nil {
		if err := r.srv.Stop(ctx); err != nil {
			return fmt.Errorf("putting tracking server of %s to sleep: %w", p.ID, err)
		}
		r.srv = nil
	}
	r.idle.slept(s.now())
	p.Status, p.SleepReason = domain.StatusSleeping, reason
	setRef(p, Ref{})
	s.log.Info("project sleeping", "project", p.ID, "reason", reason)
	return s.rec.Save(ctx, p, "sleeping")
}

// Touch resets the idle clock of the projects a gateway or the tracking
// service reports as used; busy ones serve a request still (a long
// upload) and may not sleep until a later report could say otherwise.
func (s *Service) Touch(rep activity.Report) {
	now := s.now()
	for _, id := range rep.IDs {
		s.rt.Get(id).idle.Touch(now)
	}
	for _, id := range rep.Busy {
		s.rt.Get(id).idle.Busy(now.Add(2 * activity.Every))
	}
}

// wakePoll is how often a wake checks whether the server answers yet.
const wakePoll = 100 * time.Millisecond

// Wake returns the project once its server answers, starting it first if
// it sleeps and waiting for it if it is starting; concurrent wakes start
// it once. It counts as a use. A server that does not come up answers
// 503 with its log tail.
func (s *Service) Wake(ctx context.Context, ref string) (domain.Project, error) {
	found, err := s.Find(ctx, ref)
	if err != nil {
		return domain.Project{}, err
	}
	// The caller holds its request for this long, whatever the NATS
	// handler's own deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StartTimeout)
	defer cancel()
	if found.Status == domain.StatusSleeping {
		if err := s.makeRoom(ctx, found); err != nil {
			return domain.Project{}, err
		}
	}
	for {
		p, err := s.withProject(ctx, found.ID, func(p *domain.Project) error {
			r := s.rt.Get(p.ID)
			r.idle.Touch(s.now())
			switch {
			case p.DesiredState != domain.DesiredRunning || p.Status == domain.StatusArchived:
				return errs.Conflictf("project %s is %s: start it with PUT /projects/%s/run", p.Name, p.Status, p.ID)
			case p.Status == domain.StatusFailed:
				return errs.Unavailablef("project %s failed: %s", p.Name, p.LastError)
			case p.Status == domain.StatusSleeping:
				r.idle.woke(s.now())
				r.crashes.Reset()
				p.Status = domain.StatusTerminated
				if err := s.startAs(ctx, p, r, "waking"); err != nil {
					return err
				}
			case p.Status == domain.StatusStarting && r.srv == nil && p.LastError != "":
				// It crashed while starting and backs off: the caller
				// gets the reason now instead of a hang.
				tail, _ := s.runtime.Logs(ctx, *p, 20)
				return errs.Unavailablef("project %s did not start: %s; last log lines:\n%s",
					p.Name, p.LastError, strings.TrimSpace(tail))
			}
			return s.converge(ctx, p)
		})
		if err != nil || p.Status == domain.StatusRunning {
			return p, err
		}
		select {
		case <-ctx.Done():
			tail, _ := s.runtime.Logs(context.WithoutCancel(ctx), p, 20)
			return domain.Project{}, errs.Unavailablef("project %s did not answer within %s; last log lines:\n%s", p.Name, s.cfg.StartTimeout, strings.TrimSpace(tail))
		case <-time.After(wakePoll):
		}
	}
}

// makeRoom puts the least recently used idle project to sleep when
// waking waker would run more than MaxAwake servers. A project used
// within the last activity report window is not idle: then the bound
// is exceeded rather than a request cut off.
func (s *Service) makeRoom(ctx context.Context, waker domain.Project) error {
	if s.cfg.MaxAwake <= 0 {
		return nil
	}
	type awake struct {
		id   string
		last time.Time
	}
	var all []awake
	s.rt.Each(func(id string, r *serverState) {
		if id != waker.ID && r.srv != nil && r.srv.Observe(ctx).Alive {
			all = append(all, awake{id, r.idle.Last()})
		}
	})
	if len(all) < s.cfg.MaxAwake {
		return nil
	}
	var lru *awake
	for i := range all {
		if s.now().Sub(all[i].last) < idleGrace {
			continue
		}
		if lru == nil || all[i].last.Before(lru.last) {
			lru = &all[i]
		}
	}
	if lru == nil {
		s.log.Warn("MLPANEL_MAX_AWAKE exceeded: every awake project is in use", "max", s.cfg.MaxAwake, "waking", waker.ID)
		return nil
	}
	_, err := s.withProject(ctx, lru.id, func(p *domain.Project) error {
		if p.Status != domain.StatusRunning && p.Status != domain.StatusStarting {
			return nil
		}
		return s.sleep(ctx, p, s.rt.Get(p.ID), fmt.Sprintf(
			"put to sleep to wake project %s: at most %d projects run at once (MLPANEL_MAX_AWAKE); it was the least recently used",
			waker.Name, s.cfg.MaxAwake))
	})
	return err
}

// idleGrace is how long after its last reported use a project still
// counts as in use: two activity reports.
const idleGrace = 5 * time.Second
