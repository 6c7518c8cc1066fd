package app

import (
	"context"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// withDeployment loads a deployment that is not deleted under its lock,
// so every write to one deployment happens one at a time.
func (s *Service) withDeployment(ctx context.Context, id string, fn func(d *domain.Deployment) error) (domain.Deployment, error) {
	unlock := s.ctl.Lock(id)
	defer unlock()
	d, err := s.store.Get(ctx, id)
	if err != nil {
		return domain.Deployment{}, storeErr(id, err)
	}
	if d.Deleted() {
		return domain.Deployment{}, notFound(id) // deleted ones never come back
	}
	if err := fn(&d); err != nil {
		return domain.Deployment{}, err
	}
	return d, nil
}

// Run asks for the model server to run again after a stop or a failure.
func (s *Service) Run(ctx context.Context, id string) (domain.Deployment, error) {
	return s.withDeployment(ctx, id, func(d *domain.Deployment) error {
		if d.DesiredState == domain.DesiredRunning && d.Status == domain.StatusSleeping {
			// Run wakes a sleeping one, as a prediction would.
			d.Status, d.SleepReason = domain.StatusStarting, ""
			s.rt.Get(d.ID).idle.Touch(s.now())
			if err := s.rec.Save(ctx, d, "waking"); err != nil {
				return err
			}
			return s.converge(ctx, d)
		}
		if d.DesiredState == domain.DesiredRunning && d.Status != domain.StatusFailed {
			return errs.Conflictf("deployment %s is already %s", d.ID, d.Status)
		}
		d.DesiredState = domain.DesiredRunning
		d.Error = ""
		r := s.rt.Get(d.ID)
		r.crashes.Reset() // a user's run retries a failed deployment now
		r.waitUntil = time.Time{}
		if d.Status == domain.StatusFailed {
			d.Status = domain.StatusPending
		}
		return s.want(ctx, d)
	})
}

// Stop stops the model server (a cloud instance is deleted); the
// deployment stays and can run again.
func (s *Service) Stop(ctx context.Context, id string) (domain.Deployment, error) {
	return s.withDeployment(ctx, id, func(d *domain.Deployment) error {
		d.DesiredState = domain.DesiredStopped
		return s.want(ctx, d)
	})
}

// Delete stops the model server and marks the deployment deleted: hidden
// from lists, 404 on get, and never run again.
func (s *Service) Delete(ctx context.Context, id string) (domain.Deployment, error) {
	return s.withDeployment(ctx, id, func(d *domain.Deployment) error {
		d.DesiredState = domain.DesiredDeleted
		return s.want(ctx, d)
	})
}

// want records a new desired state, then converges. The record is saved
// first because converge may leave the work to a background step (a start
// in flight), and that step must find what the user asked for.
func (s *Service) want(ctx context.Context, d *domain.Deployment) error {
	if err := s.rec.Save(ctx, d, ""); err != nil {
		return err
	}
	return s.converge(ctx, d)
}
