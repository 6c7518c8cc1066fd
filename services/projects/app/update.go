package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// UpdateInput changes a project's name or description; nil leaves a field.
type UpdateInput struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	IdleTimeout *string `json:"idleTimeout"`
}

// Update renames or redescribes a project.
func (s *Service) Update(ctx context.Context, ref string, in UpdateInput) (domain.Project, error) {
	if in.Name != nil {
		if err := domain.ValidateName(*in.Name); err != nil {
			return domain.Project{}, errs.AsInvalid(err)
		}
	}
	if in.Description != nil {
		if err := domain.ValidateDescription(*in.Description); err != nil {
			return domain.Project{}, errs.AsInvalid(err)
		}
	}
	if in.IdleTimeout != nil {
		if _, _, err := domain.ParseIdleTimeout(*in.IdleTimeout); err != nil {
			return domain.Project{}, errs.AsInvalid(err)
		}
	}
	// Renames race with creates on name uniqueness.
	s.createMu.Lock()
	defer s.createMu.Unlock()
	p, err := s.Find(ctx, ref)
	if err != nil {
		return domain.Project{}, err
	}
	unlock := s.ctl.Lock(p.ID)
	defer unlock()
	if p, err = s.store.Get(ctx, p.ID); err != nil {
		return domain.Project{}, storeErr(ref, err)
	}
	if in.Name != nil && *in.Name != p.Name {
		other, err := s.store.GetByName(ctx, *in.Name)
		switch {
		case err == nil && other.ID != p.ID:
			return domain.Project{}, duplicateName(*in.Name)
		case err != nil && !errors.Is(err, ErrNotFound):
			return domain.Project{}, fmt.Errorf("renaming project %s: %w", p.ID, err)
		}
		p.Name = *in.Name
		p.MlflowURI = s.cfg.AdvertiseURL(p) // a public URL carries the name
	}
	if in.Description != nil {
		p.Description = *in.Description
	}
	if in.IdleTimeout != nil {
		p.IdleTimeout = strings.TrimSpace(*in.IdleTimeout)
	}
	if err := s.rec.Save(ctx, &p, "updated"); err != nil {
		if errors.Is(err, ErrDuplicateName) {
			return domain.Project{}, duplicateName(p.Name)
		}
		return domain.Project{}, fmt.Errorf("updating project %s: %w", p.ID, err)
	}
	return p, nil
}
