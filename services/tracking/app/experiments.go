package app

import (
	"context"
	"strconv"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// ExperimentQuery selects the experiments of a list.
type ExperimentQuery struct {
	Project string
	View    string // active (default), deleted or all
	Filter  string // MLflow's experiment filter syntax, passed through
}

// ListExperiments returns one page of a project's experiments.
func (s *Service) ListExperiments(ctx context.Context, q ExperimentQuery, lp events.ListParams) (events.List[domain.Experiment], error) {
	view, err := viewType(q.View)
	if err != nil {
		return events.List[domain.Experiment]{}, err
	}
	if err := checkFilter(q.Filter); err != nil {
		return events.List[domain.Experiment]{}, err
	}
	t, err := s.open(ctx, q.Project)
	if err != nil {
		return events.List[domain.Experiment]{}, err
	}
	if res, ok, err := s.directExperiments(ctx, t, q, view, lp); ok {
		return res, err
	}
	exps, err := t.c.SearchExperiments(ctx, view, q.Filter)
	if err != nil {
		return events.List[domain.Experiment]{}, t.mlflowErr(err)
	}
	times, err := t.runTimes(ctx, exps)
	if err != nil {
		return events.List[domain.Experiment]{}, err
	}
	items := make([]domain.Experiment, 0, len(exps))
	for _, e := range exps {
		items = append(items, domain.NewExperiment(t.p.ID, e, times[e.ExperimentID]))
	}
	return page(items, lp, domain.ExperimentSortKeys, "id", "experiments")
}

// viewType maps the view query parameter to MLflow's view type.
func viewType(v string) (string, error) {
	switch strings.ToLower(v) {
	case "", "active", "active_only":
		return mc.ViewActive, nil
	case "deleted", "deleted_only":
		return mc.ViewDeleted, nil
	case "all":
		return mc.ViewAll, nil
	}
	return "", errs.Invalidf("view=%q: want active, deleted or all", v)
}

// runTimes counts the active runs of the experiments and finds the times
// the time rule needs, with one search over all of them.
func (t target) runTimes(ctx context.Context, exps []mc.Experiment) (map[string]domain.RunTimes, error) {
	out := make(map[string]domain.RunTimes, len(exps))
	if len(exps) == 0 {
		return out, nil
	}
	ids := make([]string, 0, len(exps))
	for _, e := range exps {
		ids = append(ids, e.ExperimentID)
	}
	if times, ok, err := t.s.directRunTimes(ctx, t, ids); ok {
		return times, err
	}
	runs, err := t.c.SearchRuns(ctx, mc.RunSearch{ExperimentIDs: ids, View: mc.ViewActive})
	if err != nil {
		return nil, t.mlflowErr(err)
	}
	for _, r := range runs {
		rt := out[r.Info.ExperimentID]
		rt.Add(r.Info)
		out[r.Info.ExperimentID] = rt
	}
	return out, nil
}

// experiment reads one experiment with its run times; a deleted one is a
// 404 unless deletedOK.
func (t target) experiment(ctx context.Context, id string, deletedOK bool) (domain.Experiment, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return domain.Experiment{}, errs.Invalidf("an experiment id is required")
	}
	if !domain.ValidExperimentID(id) {
		return domain.Experiment{}, errs.Invalidf("experiment id %q must be a valid integer: a whole number such as 1", id)
	}
	e, err := t.c.GetExperiment(ctx, id)
	if err != nil {
		return domain.Experiment{}, t.mlflowErr(err)
	}
	if e.LifecycleStage == mc.StageDeleted && !deletedOK {
		return domain.Experiment{}, errs.NotFoundf("experiment %s of project %s is deleted: restore it with PUT /experiments/%s/restore?project_id=%s",
			id, t.p.Name, id, t.p.ID)
	}
	times, err := t.runTimes(ctx, []mc.Experiment{e})
	if err != nil {
		return domain.Experiment{}, err
	}
	return domain.NewExperiment(t.p.ID, e, times[e.ExperimentID]), nil
}

// GetExperiment returns one experiment; deleted ones are 404.
func (s *Service) GetExperiment(ctx context.Context, project, id string) (domain.Experiment, error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.Experiment{}, err
	}
	return t.experiment(ctx, id, false)
}

// ExperimentInput is the body of POST /experiments.
type ExperimentInput struct {
	ProjectID        string            `json:"project_id"`
	Name             string            `json:"name"`
	Description      string            `json:"description"`
	ArtifactLocation string            `json:"artifact_location"`
	Tags             map[string]string `json:"tags"`
	// UserID names the creator when auth is off (the original's form
	// field); an authenticated caller wins over it.
	UserID string `json:"user_id"`
}

// CreateExperiment creates an experiment and records that mlpanel made it
// and when (the time rule reports these times).
func (s *Service) CreateExperiment(ctx context.Context, project string, in ExperimentInput, caller string) (domain.Experiment, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" {
		return domain.Experiment{}, errs.Invalidf("name is required: the experiment's name, unique in the project")
	}
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.Experiment{}, err
	}
	tags := make([]mc.Tag, 0, len(in.Tags)+3)
	for k, v := range in.Tags {
		if strings.HasPrefix(k, "mlpanel.") {
			return domain.Experiment{}, errs.Invalidf("tag %q: tags starting with mlpanel. are mlpanel's own", k)
		}
		tags = append(tags, mc.Tag{Key: k, Value: v})
	}
	tags = append(tags, mc.Tag{Key: domain.CreatedAtTag, Value: strconv.FormatInt(s.now(), 10)})
	if caller == "" {
		caller = strings.TrimSpace(in.UserID)
	}
	if caller != "" {
		tags = append(tags, mc.Tag{Key: domain.CreatedByTag, Value: caller})
	}
	if in.Description != "" {
		tags = append(tags, mc.Tag{Key: domain.DescriptionTag, Value: in.Description})
	}
	id, err := t.c.CreateExperiment(ctx, name, in.ArtifactLocation, tags)
	if err != nil {
		return domain.Experiment{}, t.mlflowErr(err)
	}
	return t.experiment(ctx, id, false)
}

// DeleteExperiment marks an experiment deleted (MLflow's soft delete) and
// returns it as it is now.
func (s *Service) DeleteExperiment(ctx context.Context, project, id string) (domain.Experiment, error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.Experiment{}, err
	}
	if _, err := t.experiment(ctx, id, false); err != nil {
		return domain.Experiment{}, err
	}
	if err := t.c.DeleteExperiment(ctx, id); err != nil {
		return domain.Experiment{}, t.mlflowErr(err)
	}
	return t.experiment(ctx, id, true)
}

// RestoreExperiment brings a deleted experiment back.
func (s *Service) RestoreExperiment(ctx context.Context, project, id string) (domain.Experiment, error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.Experiment{}, err
	}
	e, err := t.experiment(ctx, id, true)
	if err != nil {
		return domain.Experiment{}, err
	}
	if e.LifecycleStage != mc.StageDeleted {
		return domain.Experiment{}, errs.Conflictf("experiment %s of project %s is not deleted: nothing to restore", id, t.p.Name)
	}
	if err := t.c.RestoreExperiment(ctx, id); err != nil {
		return domain.Experiment{}, t.mlflowErr(err)
	}
	return t.experiment(ctx, id, false)
}
