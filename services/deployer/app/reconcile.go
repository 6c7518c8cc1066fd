package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// Adopt takes over the model servers an earlier run of the deployer left
// alive, so a restart never starts a second copy or leaves an orphan. ctx
// is the service's life: background starts and stops run under it.
func (s *Service) Adopt(ctx context.Context) error {
	s.ctx = ctx
	all, err := s.store.All(ctx)
	if err != nil {
		return fmt.Errorf("loading deployments to adopt their servers: %w", err)
	}
	for _, d := range all {
		if !d.Live() {
			continue
		}
		b, ok := s.backends[d.Type]
		if !ok {
			continue
		}
		if srv, ok := b.Adopt(ctx, d); ok {
			r := s.runtimeOf(d.ID)
			r.srv, r.startedAt = srv, s.now()
			s.log.Info("adopted model server", "deployment", d.ID, "type", d.Type, "url", d.URL)
		}
	}
	return nil
}

// Supervise converges every deployment every Interval (or when
// triggered) until ctx ends. On the way out it waits for background
// starts and stops, and stops local servers if StopOnExit is set.
func (s *Service) Supervise(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.reconcileAll(ctx)
		select {
		case <-ctx.Done():
			s.bg.Wait()
			if s.cfg.StopOnExit == nil || s.cfg.StopOnExit() {
				s.stopAllLocal()
			}
			return nil
		case <-t.C:
		case <-s.kick:
		}
	}
}

func (s *Service) reconcileAll(ctx context.Context) {
	all, err := s.store.All(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("reconcile: loading deployments", "err", err)
		}
		return
	}
	for _, d := range all {
		if ctx.Err() != nil {
			return
		}
		if d.Status == domain.StatusDeleted {
			continue
		}
		unlock := s.locks.Lock(d.ID)
		cur, err := s.store.Get(ctx, d.ID)
		if err == nil {
			err = s.converge(ctx, &cur)
		}
		unlock()
		if err != nil && ctx.Err() == nil {
			s.log.Error("reconcile", "deployment", d.ID, "err", err)
		}
	}
}

// serverOf is the deployment's current server, if any.
func (s *Service) serverOf(id string) Server {
	unlock := s.locks.Lock(id)
	defer unlock()
	return s.runtimeOf(id).srv
}

// converge moves one deployment one step towards its desired state and
// saves it if anything changed. Slow steps (starting, stopping) run in the
// background and converge again when they end. The caller holds the lock.
func (s *Service) converge(ctx context.Context, d *domain.Deployment) error {
	r := s.runtimeOf(d.ID)
	if r.busy {
		if d.DesiredState != domain.DesiredRunning && r.cancel != nil {
			r.cancel() // a stop or delete need not wait for a slow start
		}
		return nil
	}
	if d.DesiredState != domain.DesiredRunning {
		return s.convergeDown(ctx, d, r)
	}
	if d.Status == domain.StatusFailed {
		return nil // given up; a user's run starts over
	}
	if r.srv != nil {
		return s.check(ctx, d, r)
	}
	if !r.crashes.Ready(s.now()) {
		return nil // backing off
	}
	return s.start(ctx, d, r)
}

// convergeDown stops the server, then records stopped or deleted.
func (s *Service) convergeDown(ctx context.Context, d *domain.Deployment, r *runtime) error {
	if r.srv != nil {
		if s.now().Before(r.stopRetry) {
			return nil // the last stop failed; retry later
		}
		if d.Status != domain.StatusStopping {
			d.Status, d.Stage = domain.StatusStopping, ""
			if err := s.save(ctx, d, string(domain.StatusStopping)); err != nil {
				return err
			}
		}
		srv := r.srv
		s.background(d.ID, r, nil, func(bctx context.Context) error { return srv.Stop(bctx) }, func(ctx context.Context, cur *domain.Deployment, err error) error {
			if err != nil {
				r.stopRetry = s.now().Add(10 * time.Second)
				cur.Error = "stopping the model server: " + err.Error()
				s.log.Warn("stopping model server", "deployment", cur.ID, "err", err)
				return s.save(ctx, cur, "")
			}
			r.srv, r.stopRetry = nil, time.Time{}
			if s.ctx.Err() != nil {
				return nil // shutting down: the next run converges it
			}
			return s.converge(ctx, cur)
		})
		return nil
	}
	final := domain.StatusStopped
	if d.DesiredState == domain.DesiredDeleted {
		final = domain.StatusDeleted
	}
	if d.Status == final {
		return nil
	}
	d.Status, d.Stage, d.Pid, d.PidStart = final, "", 0, 0
	// No server, no address: the original answered null host and port.
	d.Host, d.Port, d.URL = "", 0, ""
	return s.save(ctx, d, string(final))
}

// check watches a server that exists: crashed, ready, or slow to start.
func (s *Service) check(ctx context.Context, d *domain.Deployment, r *runtime) error {
	if !r.srv.Alive(ctx) {
		srv := r.srv
		r.srv = nil
		// A leader killed with -9 leaves workers holding the port, and
		// a cloud instance that stopped still costs its disk.
		if err := srv.Stop(ctx); err != nil {
			s.log.Warn("cleaning up a dead model server", "deployment", d.ID, "err", err)
		}
		return s.crashed(ctx, d, r, "the model server exited unexpectedly")
	}
	if d.Status == domain.StatusRunning && s.now().Sub(r.checkedAt) < s.cfg.HealthEvery {
		return nil
	}
	if r.srv.Ready(ctx) {
		r.checkedAt = s.now()
		if s.now().Sub(r.startedAt) > proc.StableAfter {
			r.crashes.Reset()
		}
		if d.Status != domain.StatusRunning {
			d.Status, d.Stage, d.Error = domain.StatusRunning, "", ""
			r.srv.Apply(d)
			return s.save(ctx, d, string(domain.StatusRunning))
		}
		return nil
	}
	if d.Status != domain.StatusRunning && s.now().Sub(r.startedAt) > s.cfg.StartTimeout {
		srv := r.srv
		r.srv = nil
		_ = srv.Stop(ctx)
		return s.crashed(ctx, d, r, fmt.Sprintf("the model server did not answer /ping within %s", s.cfg.StartTimeout))
	}
	return nil
}

// start resolves where the model server fetches the model and launches
// it in the background.
func (s *Service) start(ctx context.Context, d *domain.Deployment, r *runtime) error {
	b := s.backends[d.Type]
	if b == nil {
		return s.fail(ctx, d, r, fmt.Sprintf("deployments of type %s are not configured on this panel", d.Type))
	}
	p, err := s.projects.Get(ctx, d.ProjectID)
	if err != nil {
		return s.crashed(ctx, d, r, fmt.Sprintf("looking up project %s: %v", d.ProjectID, err))
	}
	if !p.Running() {
		return s.crashed(ctx, d, r, fmt.Sprintf(
			"project %s is %s: its registry serves the model, so start it with PUT /projects/%s/run", p.Name, p.Status, p.ID))
	}
	target := Target{Deployment: *d, TrackingURI: b.TrackingURI(p)}
	if d.Status != domain.StatusStarting {
		d.Status, d.Stage = domain.StatusStarting, ""
		if err := s.save(ctx, d, string(domain.StatusStarting)); err != nil {
			return err
		}
	}
	id := d.ID
	var srv Server
	s.background(id, r, &r.cancel, func(bctx context.Context) error {
		var err error
		srv, err = b.Start(bctx, target, func(st domain.Stage) { s.progress(id, st) })
		return err
	}, func(ctx context.Context, cur *domain.Deployment, err error) error {
		var perm *Permanent
		switch {
		case err != nil && s.ctx.Err() != nil:
			return nil // shutting down; the next run starts it again
		case err != nil && cur.DesiredState != domain.DesiredRunning:
			return s.converge(ctx, cur) // cancelled by a stop or delete
		case errors.As(err, &perm):
			return s.fail(ctx, cur, r, perm.Error())
		case err != nil:
			return s.crashed(ctx, cur, r, err.Error())
		}
		r.srv, r.startedAt, r.checkedAt = srv, s.now(), time.Time{}
		srv.Apply(cur)
		if err := s.save(ctx, cur, ""); err != nil {
			return err
		}
		if s.ctx.Err() != nil {
			return nil
		}
		return s.converge(ctx, cur)
	})
	return nil
}

// background runs work outside the deployment's lock, then calls done
// under the lock with the record as it is by then. A deployment has at
// most one background step at a time.
func (s *Service) background(id string, r *runtime, cancelSlot *context.CancelFunc, work func(ctx context.Context) error, done func(ctx context.Context, cur *domain.Deployment, err error) error) {
	if s.ctx.Err() != nil {
		return // shutting down: the next run of the service converges it
	}
	bctx, cancel := context.WithCancel(s.ctx)
	r.busy = true
	if cancelSlot != nil {
		*cancelSlot = cancel
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		err := work(bctx)
		cancel()
		unlock := s.locks.Lock(id)
		defer unlock()
		r.busy, r.cancel = false, nil
		// The outcome is recorded even while the service shuts down, so a
		// server that did start is known (and adopted) next time.
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		cur, gerr := s.store.Get(dctx, id)
		if gerr != nil {
			s.log.Error("reloading deployment after a background step", "deployment", id, "err", gerr)
			return
		}
		if derr := done(dctx, &cur, err); derr != nil {
			s.log.Error("finishing a background step", "deployment", id, "err", derr)
		}
		s.trigger()
	}()
}

// progress publishes a stage of a slow start.
func (s *Service) progress(id string, st domain.Stage) {
	unlock := s.locks.Lock(id)
	defer unlock()
	d, err := s.store.Get(s.ctx, id)
	if err != nil || d.Status != domain.StatusStarting || d.DesiredState != domain.DesiredRunning {
		return
	}
	d.Stage = st
	if err := s.save(s.ctx, &d, "progress"); err != nil {
		s.log.Error("saving progress", "deployment", id, "err", err)
	}
}

// crashed counts a failure: backs off before the next start, and after
// MaxFailures in a row gives up and shows the log tail.
func (s *Service) crashed(ctx context.Context, d *domain.Deployment, r *runtime, reason string) error {
	wait := r.crashes.Record(s.now())
	d.RestartCount++
	d.Pid, d.PidStart = 0, 0
	if r.crashes.Count >= s.cfg.MaxFailures {
		return s.fail(ctx, d, r, fmt.Sprintf("%s (%d times in a row)", reason, r.crashes.Count))
	}
	s.log.Warn("model server down, restarting", "deployment", d.ID, "reason", reason, "attempt", r.crashes.Count, "in", wait)
	d.Error = reason
	change := ""
	if d.Status != domain.StatusStarting {
		d.Status, change = domain.StatusStarting, string(domain.StatusStarting)
	}
	d.Stage = ""
	return s.save(ctx, d, change)
}

// fail gives up on a deployment until a user runs it again.
func (s *Service) fail(ctx context.Context, d *domain.Deployment, r *runtime, reason string) error {
	d.Status, d.Stage, d.Pid, d.PidStart = domain.StatusFailed, "", 0, 0
	d.Error = reason
	if b := s.backends[d.Type]; b != nil {
		if tail, _ := proc.Tail(b.LogFile(*d), 20); strings.TrimSpace(tail) != "" {
			d.Error += "; last log lines:\n" + strings.TrimSpace(tail)
		}
	}
	s.log.Warn("deployment failed", "deployment", d.ID, "reason", reason)
	return s.save(ctx, d, string(domain.StatusFailed))
}

// stopAllLocal stops the local model servers in parallel; cloud
// instances live on their own and are left running.
func (s *Service) stopAllLocal() {
	s.rtMu.Lock()
	var srvs []Server
	for _, r := range s.rt {
		if r.srv != nil && r.srv.Local() {
			srvs = append(srvs, r.srv)
		}
	}
	s.rtMu.Unlock()
	var wg sync.WaitGroup
	for _, srv := range srvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Stop(context.Background()); err != nil {
				s.log.Error("stopping model server", "err", err)
			}
		}()
	}
	wg.Wait()
}
