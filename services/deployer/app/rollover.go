package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// Events a following deployment publishes besides its status changes.
const (
	ChangeRolloverStarted = "rollover_started"
	ChangeRolledOver      = "rolled_over"
	ChangeRolloverFailed  = "rollover_failed"
	ChangeAliasRemoved    = "alias_removed"
)

// probeEvery is how often a new version's server is asked for /ping
// while a rollover waits for it.
const probeEvery = 500 * time.Millisecond

// follow looks the followed alias up when it is due (every AliasResync,
// or at once after a registry event) and starts a rollover when it points
// to another version. Only a running deployment rolls over: one that is
// (re)starting takes the alias's version at that start (followAtStart).
func (s *Service) follow(ctx context.Context, d *domain.Deployment, r *runtime) error {
	if !d.Follows() || d.Status != domain.StatusRunning || r.srv == nil || r.rolling != nil || r.busy {
		return nil
	}
	every := s.cfg.AliasResync()
	if wait := r.resolvedAt.Add(every).Sub(s.now()); wait > 0 {
		r.requeue = minPositive(r.requeue, wait)
		return nil
	}
	r.resolvedAt = s.now()
	r.requeue = minPositive(r.requeue, every)
	p, err := s.projects.Get(ctx, d.ProjectID)
	if err != nil || !p.Running() {
		// A sleeping project's registry does not change without waking
		// it; waking it just to look would keep it awake forever.
		return nil
	}
	version, found, err := s.registry.Alias(ctx, p.InternalURL, d.ModelID, d.FollowAlias)
	if err != nil {
		s.log.Warn("resolving a followed alias", "deployment", d.ID, "alias", d.FollowAlias, "err", err)
		return nil
	}
	if !found {
		if d.AliasError == "" {
			d.AliasError = fmt.Sprintf("registered model %q has no alias %q any more: version %s keeps serving; set the alias again to roll over to the version it names",
				d.ModelID, d.FollowAlias, d.Version)
			s.log.Warn("followed alias removed", "deployment", d.ID, "alias", d.FollowAlias)
			return s.rec.Save(ctx, d, ChangeAliasRemoved)
		}
		return nil
	}
	if d.AliasError != "" {
		d.AliasError = ""
		if err := s.rec.Save(ctx, d, ""); err != nil {
			return err
		}
	}
	retry := r.aliasSet
	r.aliasSet = false
	if version == d.Version || (d.FailedTo(version) && !retry) {
		return nil
	}
	return s.rollover(ctx, d, r, p, version)
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 || b < a {
		return b
	}
	return a
}

// rollover records the switch to version `to` and proves the new
// version in the background beside the serving server: start, /ping, one
// predict with the model's input example. Only then does the record
// point at the new server (the gateway's predict proxy follows the
// deployment's events), and the old server drains and stops.
func (s *Service) rollover(ctx context.Context, d *domain.Deployment, r *runtime, p Project, to string) error {
	b := s.backends[d.Type]
	if b == nil {
		return nil
	}
	from := d.Version
	d.BeginRollover(to, s.now())
	if err := s.rec.Save(ctx, d, ChangeRolloverStarted); err != nil {
		return err
	}
	s.log.Info("rolling over", "deployment", d.ID, "alias", d.FollowAlias, "from", from, "to", to)
	rctx, cancel := context.WithCancel(s.ctx)
	r.rolling = cancel
	id := d.ID
	cand := d.With(domain.ServerRef{Version: to})
	cand.Stage = ""
	target := Target{Deployment: cand, TrackingURI: b.TrackingURI(p)}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer cancel()
		srv, cols, check, err := s.prove(rctx, id, b, target, p)
		if err != nil && s.ctx.Err() != nil && s.keepOnExit() {
			// Shutting down and keeping servers for the next run, as a
			// crash would: the record names the new version's server and
			// the next run settles the rollover (adoptRollover).
			unlock := s.ctl.Lock(id)
			r.rolling = nil
			unlock()
			return
		}
		if err != nil && srv != nil {
			s.stopQuietly(id, srv, "the new version's server after a failed rollover")
			srv = nil
		}
		unlock := s.ctl.Lock(id)
		defer unlock()
		r.rolling = nil
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		cur, gerr := s.store.Get(dctx, id)
		if gerr != nil {
			s.log.Error("reloading deployment after a rollover", "deployment", id, "err", gerr)
			if srv != nil {
				go s.stopQuietly(id, srv, "the new version's server of a vanished deployment")
			}
			return
		}
		if err == nil {
			if why := s.switchBlocked(&cur, r); why != "" {
				err = &interrupted{why}
			}
		}
		if err != nil {
			if srv != nil {
				go s.stopQuietly(id, srv, "the new version's server of an interrupted rollover")
			}
			if derr := s.rolloverFailed(dctx, &cur, to, check, err); derr != nil {
				s.log.Error("recording a failed rollover", "deployment", id, "err", derr)
			}
			s.ctl.Enqueue(id)
			return
		}
		if derr := s.switchTo(dctx, &cur, r, srv, cols, check); derr != nil {
			s.log.Error("switching to the new version", "deployment", id, "err", derr)
		}
		s.ctl.Enqueue(id)
	}()
	return nil
}

// interrupted is a rollover ended by something else than the new version.
type interrupted struct{ why string }

func (e *interrupted) Error() string { return e.why }

// switchBlocked says why traffic must not move now, or "".
func (s *Service) switchBlocked(cur *domain.Deployment, r *runtime) string {
	switch {
	case cur.Deleted() || cur.DesiredState != domain.DesiredRunning:
		return "the deployment was stopped or deleted during the rollover"
	case r.busy || r.srv == nil || cur.Status != domain.StatusRunning:
		return "the serving model server restarted during the rollover; it is tried again"
	case s.ctx.Err() != nil:
		return "the deployer stopped during the rollover; it is tried again when it runs"
	}
	return ""
}

// prove starts the new version's server and waits until it answers /ping
// and a predict with the input example. The server is returned even on
// error, for the caller to stop.
func (s *Service) prove(ctx context.Context, id string, b Backend, t Target, p Project) (Server, []string, string, error) {
	d := t.Deployment
	cols, err := s.registry.InputColumns(ctx, p.InternalURL, d.ModelID, d.Version)
	if err != nil {
		s.log.Warn("reading the new version's input signature", "deployment", id, "version", d.Version, "err", err)
		cols = nil
	}
	example, err := s.registry.ServingExample(ctx, p.InternalURL, d.ModelID, d.Version)
	if err != nil {
		return nil, cols, "", fmt.Errorf("reading the input example of version %s: %w", d.Version, err)
	}
	check := "/ping and one predict with the model's input example"
	if example == nil {
		check = "/ping only: version " + d.Version + " was logged without an input example"
	}
	srv, err := b.Start(ctx, t, func(domain.Stage) {})
	if err != nil {
		return nil, cols, check, fmt.Errorf("starting version %s: %w", d.Version, err)
	}
	s.recordNext(id, srv)
	deadline := time.Now().Add(s.cfg.StartTimeout)
	for !srv.Ready(ctx) {
		if !srv.Alive(ctx) {
			return srv, cols, check, fmt.Errorf("the model server of version %s exited before it answered /ping", d.Version)
		}
		if time.Now().After(deadline) {
			return srv, cols, check, fmt.Errorf("the model server of version %s did not answer /ping within %s (MLPANEL_DEPLOY_START_TIMEOUT)", d.Version, s.cfg.StartTimeout)
		}
		select {
		case <-ctx.Done():
			return srv, cols, check, &interrupted{"the rollover was cancelled: " + context.Cause(ctx).Error()}
		case <-time.After(probeEvery):
		}
	}
	if example != nil {
		if err := srv.Predict(ctx, example); err != nil {
			if ctx.Err() != nil {
				return srv, cols, check, &interrupted{"the rollover was cancelled: " + ctx.Err().Error()}
			}
			return srv, cols, check, fmt.Errorf("version %s answers /ping but failed a predict with its input example: %w", d.Version, err)
		}
	}
	return srv, cols, check, nil
}

// recordNext saves where the new version's server runs before it is
// proven, so a deployer killed meanwhile finds it and stops it.
func (s *Service) recordNext(id string, srv Server) {
	unlock := s.ctl.Lock(id)
	defer unlock()
	// Not the service's context: a server that started while the service
	// stops must still be recorded, or it would outlive everyone.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := s.store.Get(ctx, id)
	if err != nil || d.Next == nil {
		return
	}
	at := d.With(*d.Next)
	srv.Apply(&at)
	ref := at.Serving()
	d.Next = &ref
	if err := s.rec.Save(ctx, &d, ""); err != nil {
		s.log.Error("recording the new version's server", "deployment", id, "err", err)
	}
}

// rolloverFailed closes the rollover: the old version keeps serving.
func (s *Service) rolloverFailed(ctx context.Context, d *domain.Deployment, to, check string, err error) error {
	result, change := domain.RolloverFailed, ChangeRolloverFailed
	var in *interrupted
	if errors.As(err, &in) {
		result = domain.RolloverInterrupted
	} else {
		d.RolloverError = fmt.Sprintf("rolling over to version %s failed, version %s keeps serving: %v", to, d.Version, err)
	}
	s.log.Warn("rollover did not complete", "deployment", d.ID, "to", to, "result", result, "err", err)
	d.EndRollover(result, check, err.Error(), s.now())
	return s.rec.Save(ctx, d, change)
}

// switchTo points the deployment at the proven server in one write: the
// event it publishes is what moves the predict traffic. The old server
// is recorded as retired and drains in the background.
func (s *Service) switchTo(ctx context.Context, d *domain.Deployment, r *runtime, srv Server, cols []string, check string) error {
	old, oldRef := r.srv, d.Serving()
	d.Version = d.Next.Version
	d.ModelURI = domain.ModelURI(d.ModelID, d.Version)
	d.InputColumns = cols
	srv.Apply(d)
	d.Retired = append(d.Retired, oldRef)
	d.RolloverError, d.Error = "", ""
	d.EndRollover(domain.RolloverSucceeded, check, "", s.now())
	if err := s.rec.Save(ctx, d, ChangeRolledOver); err != nil {
		// Not switched: the new server goes, the old one serves on.
		d.Retired = d.Retired[:len(d.Retired)-1]
		go s.stopQuietly(d.ID, srv, "the new version's server after the switch could not be saved")
		return err
	}
	r.srv, r.startedAt, r.checkedAt = srv, s.now(), s.now()
	r.crashes.Reset()
	s.log.Info("rolled over", "deployment", d.ID, "from", oldRef.Version, "to", d.Version)
	s.retire(d.ID, old, oldRef)
	return nil
}

// retire stops an old server after the drain time, then forgets it.
func (s *Service) retire(id string, srv Server, ref domain.ServerRef) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		select {
		case <-time.After(s.cfg.Drain):
		case <-s.ctx.Done():
			if s.keepOnExit() {
				return // the record keeps it; the next run drains and stops it
			}
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		err := srv.Stop(sctx)
		if err != nil {
			s.log.Error("stopping a retired model server", "deployment", id, "version", ref.Version, "err", err)
		}
		if err != nil {
			return // the record keeps it; the next run of the deployer tries again
		}
		unlock := s.ctl.Lock(id)
		defer unlock()
		d, gerr := s.store.Get(sctx, id)
		if gerr != nil {
			return
		}
		for i, x := range d.Retired {
			if x == ref {
				d.Retired = append(d.Retired[:i], d.Retired[i+1:]...)
				if err := s.rec.Save(sctx, &d, ""); err != nil {
					s.log.Error("forgetting a retired model server", "deployment", id, "err", err)
				}
				break
			}
		}
	}()
}

func (s *Service) stopQuietly(id string, srv Server, what string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		s.log.Error("stopping "+what, "deployment", id, "err", err)
	}
}

// adoptRollover settles what a deployer that died mid-rollover left: the
// switch had not happened (it is one write), so the new version's server
// is stopped and the rollover recorded as interrupted; the alias is
// resolved again and a new rollover starts. Old servers that were
// draining are stopped. The same outcome every time, whatever the moment
// of the crash.
func (s *Service) adoptRollover(ctx context.Context, d domain.Deployment, b Backend) {
	if d.Next == nil && len(d.Retired) == 0 {
		return
	}
	unlock := s.ctl.Lock(d.ID)
	defer unlock()
	if d.Next != nil {
		if srv, ok := b.Adopt(ctx, d.With(*d.Next)); ok && d.Next.URL != "" {
			s.log.Info("stopping the new version's server of an interrupted rollover", "deployment", d.ID, "version", d.Next.Version)
			s.stopQuietly(d.ID, srv, "the new version's server of an interrupted rollover")
		}
		check := ""
		if last := d.LastRollover(); last != nil {
			check = last.Check
		}
		if err := s.rolloverFailed(ctx, &d, d.Next.Version, check, &interrupted{"the deployer restarted during the rollover; the old version kept serving and the rollover starts again"}); err != nil {
			s.log.Error("recording an interrupted rollover", "deployment", d.ID, "err", err)
		}
	}
	for _, ref := range d.Retired {
		if srv, ok := b.Adopt(ctx, d.With(ref)); ok {
			s.retire(d.ID, srv, ref)
		} else {
			s.forgetRetired(ctx, &d, ref)
		}
	}
}

func (s *Service) forgetRetired(ctx context.Context, d *domain.Deployment, ref domain.ServerRef) {
	for i, x := range d.Retired {
		if x == ref {
			d.Retired = append(d.Retired[:i], d.Retired[i+1:]...)
			if err := s.rec.Save(ctx, d, ""); err != nil {
				s.log.Error("forgetting a retired model server", "deployment", d.ID, "err", err)
			}
			return
		}
	}
}

// AliasChanged is told by a registry event that an alias of a model was
// set or removed: deployments that follow it look it up at once, and
// one that failed to roll over to the version tries again.
func (s *Service) AliasChanged(ctx context.Context, projectID, model, alias string) error {
	all, err := s.store.All(ctx)
	if err != nil {
		return fmt.Errorf("finding deployments that follow %s@%s: %w", model, alias, err)
	}
	for _, d := range all {
		if d.Deleted() || d.ProjectID != projectID || d.ModelID != model || d.FollowAlias != alias {
			continue
		}
		unlock := s.ctl.Lock(d.ID)
		r := s.rt.Get(d.ID)
		r.resolvedAt, r.aliasSet = time.Time{}, true
		unlock()
		s.ctl.Enqueue(d.ID)
	}
	return nil
}

// followAtStart points a deployment that follows an alias at the alias's
// version before its server starts (a run after a stop, a restart after
// a crash): nothing serves, so no rollover is needed.
func (s *Service) followAtStart(ctx context.Context, d *domain.Deployment, r *runtime, p Project) error {
	if !d.Follows() {
		return nil
	}
	r.resolvedAt = s.now()
	v, found, err := s.registry.Alias(ctx, p.InternalURL, d.ModelID, d.FollowAlias)
	if err != nil || !found || v == d.Version {
		return nil // the recorded version starts; following resumes once it runs
	}
	cols, err := s.registry.InputColumns(ctx, p.InternalURL, d.ModelID, v)
	if err != nil {
		s.log.Warn("reading the input signature", "deployment", d.ID, "version", v, "err", err)
		cols = nil
	}
	now := s.now()
	d.BeginRollover(v, now)
	d.EndRollover(domain.RolloverSucceeded, "none needed: no server was running, version "+v+" starts in its place", "", now)
	d.Version, d.ModelURI, d.InputColumns = v, domain.ModelURI(d.ModelID, v), cols
	d.AliasError, d.RolloverError = "", ""
	return s.rec.Save(ctx, d, ChangeRolledOver)
}

// keepOnExit reports whether servers outlive this run of the service
// (MLPANEL_DEPLOY_STOP_ON_EXIT=false): then a rollover cut short by the
// shutdown is left as a crash would leave it.
func (s *Service) keepOnExit() bool {
	return s.cfg.StopOnExit != nil && !s.cfg.StopOnExit()
}
