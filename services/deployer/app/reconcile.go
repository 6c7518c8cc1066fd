package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// runtime is what the service knows about a deployment's server beyond
// the record.
type runtime struct {
	srv       Server
	busy      bool               // a start or stop runs in the background
	cancel    context.CancelFunc // cancels a background start
	startedAt time.Time
	crashes   proc.Crashes
	stopRetry time.Time // after a failed stop, no new attempt before this
	checkedAt time.Time
	// A deployment that follows an alias: the rollover in flight (its
	// cancel), when the alias was last looked up, and whether a registry
	// event said it was set (which retries a version that failed).
	rolling    context.CancelFunc
	resolvedAt time.Time
	aliasSet   bool
	// While the project is not running, the start waits: no new look
	// before waitUntil, and the controller is asked to look again then.
	waitUntil time.Time
	requeue   time.Duration
	idle      activity.Clock // sleep.go: predictions keep it awake
}

// projectWait is how often a deployment waiting for its project looks
// again.
const projectWait = 2 * time.Second

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
			r := s.rt.Get(d.ID)
			r.srv, r.startedAt = srv, s.now()
			s.log.Info("adopted model server", "deployment", d.ID, "type", d.Type, "url", d.URL)
		}
	}
	for _, d := range all {
		if b, ok := s.backends[d.Type]; ok {
			s.adoptRollover(ctx, d, b)
		}
	}
	return nil
}

// Supervise converges every deployment every Interval (or when a use
// case or a background step asks) until ctx ends. On the way out it waits
// for background starts and stops, and stops local servers if StopOnExit
// is set.
func (s *Service) Supervise(ctx context.Context) error {
	err := s.ctl.Run(ctx)
	s.bg.Wait()
	if s.cfg.StopOnExit == nil || s.cfg.StopOnExit() {
		s.stopAllLocal()
	}
	return err
}

// ids lists the deployments that are not deleted for the controller's
// resync.
func (s *Service) ids(ctx context.Context) ([]string, error) {
	all, err := s.store.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading deployments: %w", err)
	}
	var ids []string
	for _, d := range all {
		if d.Status != domain.StatusDeleted {
			ids = append(ids, d.ID)
		}
	}
	return ids, nil
}

// Reconcile converges one deployment; the controller holds its lock.
func (s *Service) Reconcile(ctx context.Context, id string) (reconcile.Result, error) {
	d, err := s.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if d.Status == domain.StatusDeleted {
		return reconcile.Result{}, nil
	}
	err = s.converge(ctx, &d)
	r := s.rt.Get(id)
	res := reconcile.Result{RequeueAfter: r.requeue}
	r.requeue = 0
	return res, err
}

// serverOf is the deployment's current server, if any.
func (s *Service) serverOf(id string) Server {
	unlock := s.ctl.Lock(id)
	defer unlock()
	return s.rt.Get(id).srv
}

// converge moves one deployment one step towards its desired state and
// saves it if anything changed. Slow steps (starting, stopping) run in the
// background and converge again when they end. The caller holds the lock.
func (s *Service) converge(ctx context.Context, d *domain.Deployment) error {
	r := s.rt.Get(d.ID)
	if d.DesiredState != domain.DesiredRunning && r.rolling != nil {
		r.rolling() // a stop or delete ends a rollover; the old server goes too
	}
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
	if d.Status == domain.StatusSleeping {
		return nil // a prediction (Wake) or a run starts it
	}
	if r.srv != nil {
		if slept, err := s.sleepIfIdle(ctx, d, r); slept || err != nil {
			return err
		}
		if err := s.check(ctx, d, r); err != nil {
			return err
		}
		return s.follow(ctx, d, r)
	}
	if !r.crashes.Ready(s.now()) || s.now().Before(r.waitUntil) {
		return nil // backing off, or waiting for the project
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
			if err := s.rec.Save(ctx, d, string(domain.StatusStopping)); err != nil {
				return err
			}
		}
		srv := r.srv
		s.background(d.ID, r, nil, func(bctx context.Context) error { return srv.Stop(bctx) }, func(ctx context.Context, cur *domain.Deployment, err error) error {
			if err != nil {
				r.stopRetry = s.now().Add(10 * time.Second)
				cur.Error = "stopping the model server: " + err.Error()
				s.log.Warn("stopping model server", "deployment", cur.ID, "err", err)
				return s.rec.Save(ctx, cur, "")
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
	return s.rec.Save(ctx, d, string(final))
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
			// The idle clock starts when it answers, however long the
			// start took: predictions held during a wake go through first.
			r.idle.Touch(s.now())
			d.Status, d.Stage, d.Error = domain.StatusRunning, "", ""
			r.srv.Apply(d)
			return s.rec.Save(ctx, d, string(domain.StatusRunning))
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
	if errs.Is(err, errs.NotFound) {
		return s.crashed(ctx, d, r, fmt.Sprintf("looking up project %s: %v", d.ProjectID, err))
	}
	if err != nil {
		return s.waitForProject(ctx, d, r, fmt.Sprintf("waiting for project %s: the projects service does not answer (%v)", d.ProjectID, err))
	}
	if p.Status == "sleeping" {
		// The model server fetches the model from the project's
		// registry: wake it, and look again while it starts.
		if err := s.projects.StartWaking(ctx, p.ID); err != nil {
			s.log.Warn("waking the project of a deployment", "deployment", d.ID, "project", p.ID, "err", err)
		}
	}
	if !p.Running() {
		return s.waitForProject(ctx, d, r, fmt.Sprintf(
			"waiting for project %s, which is %s: its registry serves the model; start it with PUT /projects/%s/run if it does not come back by itself", p.Name, p.Status, p.ID))
	}
	r.waitUntil = time.Time{}
	if err := s.followAtStart(ctx, d, r, p); err != nil {
		return err
	}
	target := Target{Deployment: *d, TrackingURI: b.TrackingURI(p)}
	if d.Status != domain.StatusStarting {
		d.Status, d.Stage = domain.StatusStarting, ""
		if err := s.rec.Save(ctx, d, string(domain.StatusStarting)); err != nil {
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
		if err := s.rec.Save(ctx, cur, ""); err != nil {
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
		unlock := s.ctl.Lock(id)
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
		s.ctl.Enqueue(id)
	}()
}

// progress publishes a stage of a slow start.
func (s *Service) progress(id string, st domain.Stage) {
	unlock := s.ctl.Lock(id)
	defer unlock()
	d, err := s.store.Get(s.ctx, id)
	if err != nil || d.Status != domain.StatusStarting || d.DesiredState != domain.DesiredRunning {
		return
	}
	d.Stage = st
	if err := s.rec.Save(s.ctx, &d, "progress"); err != nil {
		s.log.Error("saving progress", "deployment", id, "err", err)
	}
}

// waitForProject records why the start waits and looks again soon. A
// project that is starting or stopped is a dependency that is not ready,
// not a crash: the deployment neither counts it nor fails, and starts by
// itself once the project runs again.
func (s *Service) waitForProject(ctx context.Context, d *domain.Deployment, r *runtime, reason string) error {
	r.waitUntil, r.requeue = s.now().Add(projectWait), projectWait
	change := ""
	if d.Status != domain.StatusStarting {
		d.Status, change = domain.StatusStarting, string(domain.StatusStarting)
	}
	if change == "" && d.Error == reason {
		return nil // nothing new to record
	}
	if d.Error != reason {
		s.log.Info("model server waits for its project", "deployment", d.ID, "reason", reason)
	}
	d.Error, d.Stage, d.Pid, d.PidStart = reason, "", 0, 0
	return s.rec.Save(ctx, d, change)
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
	return s.rec.Save(ctx, d, change)
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
	return s.rec.Save(ctx, d, string(domain.StatusFailed))
}

// stopAllLocal stops the local model servers in parallel; cloud
// instances live on their own and are left running.
func (s *Service) stopAllLocal() {
	var stops []func()
	s.rt.Each(func(id string, r *runtime) {
		if srv := r.srv; srv != nil && srv.Local() {
			stops = append(stops, func() {
				if err := srv.Stop(context.Background()); err != nil {
					s.log.Error("stopping model server", "deployment", id, "err", err)
				}
			})
		}
	})
	reconcile.Parallel(stops)
}
