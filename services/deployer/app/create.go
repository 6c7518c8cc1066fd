package app

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// CreateInput is what a user gives to deploy a model. Version may be a
// number, an alias, or empty for the latest version. The original's
// clients sent forms, so numbers may arrive as strings and vice versa.
type CreateInput struct {
	ProjectID FlexString `json:"project_id"`
	ModelID   string     `json:"model_id"`
	Version   FlexString `json:"version"`
	// FollowAlias (or a version "@alias") makes the deployment follow the
	// alias: it rolls over to each version the alias moves to.
	FollowAlias string `json:"follow_alias"`
	Type        string `json:"type"`
	// IdleTimeout and MinAwake let the model server sleep when idle
	// (domain.IdleRule); by default it never sleeps.
	IdleTimeout string     `json:"idle_timeout"`
	MinAwake    FlexString `json:"min_awake"`
	CreatedBy   string     `json:"-"`
}

// Create records a deployment of a registered model version and starts
// it. The project must be running, because the version is resolved in
// its registry now, so the deployment names one fixed version even when
// it was asked for by alias or as the latest.
func (s *Service) Create(ctx context.Context, in CreateInput) (domain.Deployment, error) {
	typ, err := domain.ParseType(in.Type)
	if err != nil {
		return domain.Deployment{}, errs.AsInvalid(err)
	}
	if _, ok := s.backends[typ]; !ok {
		return domain.Deployment{}, errs.Invalidf("deployments of type %s are not configured on this panel: set MLPANEL_GCP_PROJECT and MLPANEL_GCP_ZONE", typ)
	}
	projectRef := strings.TrimSpace(string(in.ProjectID))
	model := strings.TrimSpace(in.ModelID)
	version := strings.TrimSpace(string(in.Version))
	switch {
	case projectRef == "":
		return domain.Deployment{}, errs.Invalidf("project_id is required")
	case model == "":
		return domain.Deployment{}, errs.Invalidf("model_id (the registered model's name) is required")
	}
	version, follow, err := domain.ParseFollow(version, in.FollowAlias)
	if err != nil {
		return domain.Deployment{}, errs.AsInvalid(err)
	}
	idle := domain.Deployment{Type: typ}
	if err := idleInput(&idle, in.IdleTimeout, in.MinAwake); err != nil {
		return domain.Deployment{}, errs.AsInvalid(err)
	}
	p, err := s.projects.Get(ctx, projectRef)
	if err != nil {
		return domain.Deployment{}, err
	}
	if p.Status == "sleeping" || p.Status == "starting" {
		// Its registry resolves the model: wait for it rather than refuse.
		if p, err = s.projects.Wake(ctx, p.ID); err != nil {
			return domain.Deployment{}, err
		}
	}
	if !p.Running() {
		return domain.Deployment{}, errs.Conflictf(
			"project %s is %s: the model is resolved in its registry, so start it first with PUT /projects/%s/run", p.Name, p.Status, p.ID)
	}
	var resolved string
	if follow != "" {
		v, found, err := s.registry.Alias(ctx, p.InternalURL, model, follow)
		if err != nil {
			return domain.Deployment{}, err
		}
		if !found {
			return domain.Deployment{}, errs.Invalidf(
				"registered model %q has no alias %q to follow: set it first (MLflow's set_registered_model_alias, or PUT /model-versions/{version}/aliases/{alias}?project_id=...&model_id=...), or deploy a version number", model, follow)
		}
		resolved = v
	} else if resolved, err = s.registry.Resolve(ctx, p.InternalURL, model, version); err != nil {
		return domain.Deployment{}, err
	}

	s.createMu.Lock()
	seq, err := s.store.NextSeq(ctx)
	s.createMu.Unlock()
	if err != nil {
		return domain.Deployment{}, fmt.Errorf("creating deployment: %w", err)
	}
	now := s.now()
	d := domain.Deployment{
		ID: strconv.FormatInt(seq, 10), Seq: seq,
		ProjectID: p.ID, ModelID: model, Version: resolved,
		ModelURI: domain.ModelURI(model, resolved),
		Type:     typ, DesiredState: domain.DesiredRunning, Status: domain.StatusPending,
		CreatedBy: in.CreatedBy, CreatedAt: now, UpdatedAt: now,
		IdleTimeout: idle.IdleTimeout, MinAwake: idle.MinAwake,
	}
	if cols, err := s.registry.InputColumns(ctx, p.InternalURL, model, resolved); err != nil {
		// Only the original's {"data": rows} predict format needs them.
		s.log.Warn("reading the model's input signature", "model", model, "version", resolved, "err", err)
	} else {
		d.InputColumns = cols
	}
	if version != "" && !domain.IsVersionNumber(version) {
		d.Alias = version
	}
	d.FollowAlias = follow
	unlock := s.ctl.Lock(d.ID)
	defer unlock()
	if err := s.store.Insert(ctx, d); err != nil {
		return domain.Deployment{}, fmt.Errorf("creating deployment: %w", err)
	}
	s.rec.Publish(ctx, d, "created")
	if err := s.converge(ctx, &d); err != nil {
		return domain.Deployment{}, err
	}
	return d, nil
}

// FlexString accepts a JSON string or number.
type FlexString string

func (f *FlexString) UnmarshalJSON(b []byte) error {
	t := strings.TrimSpace(string(b))
	if t == "null" {
		*f = ""
		return nil
	}
	if strings.HasPrefix(t, `"`) {
		s, err := strconv.Unquote(t)
		if err != nil {
			return fmt.Errorf("malformed string %s", t)
		}
		*f = FlexString(s)
		return nil
	}
	if _, err := strconv.ParseFloat(t, 64); err != nil {
		return fmt.Errorf("want a string or a number, got %s", t)
	}
	*f = FlexString(t)
	return nil
}
