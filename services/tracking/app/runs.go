package app

import (
	"context"
	"sort"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// RunQuery selects the runs of a list. Filter and OrderBy are MLflow's
// search syntax, passed through (e.g. "metrics.accuracy > 0.9",
// "metrics.accuracy DESC").
type RunQuery struct {
	Project      string
	ExperimentID string // one id, several separated by commas, or empty for every active experiment
	Filter       string
	OrderBy      string // comma-separated clauses
	View         string // active (default), deleted or all
}

// ListRuns returns one page of runs and the true total, walking every
// MLflow page. _sort orders in memory after MLflow's order_by.
func (s *Service) ListRuns(ctx context.Context, q RunQuery, lp events.ListParams) (events.List[domain.Run], error) {
	view, err := viewType(q.View)
	if err != nil {
		return events.List[domain.Run]{}, err
	}
	if err := checkFilter(q.Filter); err != nil {
		return events.List[domain.Run]{}, err
	}
	if err := s.checkGrammar(q.Filter); err != nil {
		return events.List[domain.Run]{}, err
	}
	if err := checkOrderBy(splitClauses(q.OrderBy)); err != nil {
		return events.List[domain.Run]{}, err
	}
	var less func(a, b domain.Run) bool
	if lp.Sort != "" {
		var ok bool
		if less, ok = domain.RunSortKey(lp.Sort); !ok {
			return events.List[domain.Run]{}, errs.Invalidf("cannot sort runs by %q: use one of %s, or order_by in MLflow's syntax", lp.Sort, domain.RunSortHelp)
		}
	}
	t, err := s.open(ctx, q.Project)
	if err != nil {
		return events.List[domain.Run]{}, err
	}
	if res, ok, err := s.directRuns(ctx, t, q, view, lp); ok {
		return res, err
	}
	ids, err := t.experimentIDs(ctx, q.ExperimentID)
	if err != nil {
		return events.List[domain.Run]{}, err
	}
	items := []domain.Run{}
	if len(ids) > 0 {
		runs, err := t.c.SearchRuns(ctx, mc.RunSearch{ExperimentIDs: ids, Filter: q.Filter, OrderBy: splitClauses(q.OrderBy), View: view})
		if err != nil {
			return events.List[domain.Run]{}, t.mlflowErr(err)
		}
		for _, r := range runs {
			items = append(items, domain.NewRun(t.p.ID, r))
		}
	}
	if less == nil && q.OrderBy == "" && len(ids) > mc.MaxSearchExperiments {
		// Searched in chunks: restore MLflow's default order over all.
		sort.SliceStable(items, func(i, j int) bool { return items[i].Info.StartTime > items[j].Info.StartTime })
	}
	return events.Page(items, lp, less), nil
}

// CheckRunFilter refuses a run filter MLflow would refuse, as ListRuns
// does, without a project: over the bounds, or refused by MLflow's
// grammar (MLflow's message). nil when it passes or only MLflow's server
// can tell. The gateway asks it before it wakes a project for a search
// through the MLflow proxy.
func (s *Service) CheckRunFilter(filter string) error {
	if err := checkFilter(filter); err != nil {
		return err
	}
	return s.checkGrammar(filter)
}

// experimentIDs are the experiments a run list searches: the ones asked
// for (each must exist and be active), or every active one.
func (t target) experimentIDs(ctx context.Context, param string) ([]string, error) {
	if strings.TrimSpace(param) == "" {
		exps, err := t.c.SearchExperiments(ctx, mc.ViewActive, "")
		if err != nil {
			return nil, t.mlflowErr(err)
		}
		ids := make([]string, 0, len(exps))
		for _, e := range exps {
			ids = append(ids, e.ExperimentID)
		}
		return ids, nil
	}
	for _, id := range strings.Split(param, ",") {
		// All checked before the first MLflow call.
		if id = strings.TrimSpace(id); id != "" && !domain.ValidExperimentID(id) {
			return nil, errs.Invalidf("experiment_id %q must be a valid integer: a whole number such as 1 (several: 1,2)", id)
		}
	}
	var ids []string
	for _, id := range strings.Split(param, ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		e, err := t.c.GetExperiment(ctx, id)
		if err != nil {
			return nil, t.mlflowErr(err)
		}
		if e.LifecycleStage == mc.StageDeleted {
			return nil, errs.NotFoundf("experiment %s of project %s is deleted: restore it with PUT /experiments/%s/restore?project_id=%s", id, t.p.Name, id, t.p.ID)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// splitClauses splits comma-separated order_by clauses, keeping commas
// inside backquoted or quoted names.
func splitClauses(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '`' || r == '"' || r == '\'':
			quote = r
		case r == ',':
			if c := strings.TrimSpace(cur.String()); c != "" {
				out = append(out, c)
			}
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	if c := strings.TrimSpace(cur.String()); c != "" {
		out = append(out, c)
	}
	return out
}

// run reads one run; a deleted one is a 404 unless deletedOK.
func (t target) run(ctx context.Context, id string, deletedOK bool) (domain.Run, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return domain.Run{}, errs.Invalidf("a run id is required")
	}
	r, err := t.c.GetRun(ctx, id)
	if err != nil {
		return domain.Run{}, t.mlflowErr(err)
	}
	if r.Info.LifecycleStage == mc.StageDeleted && !deletedOK {
		return domain.Run{}, errs.NotFoundf("run %s of project %s is deleted: restore it with PUT /runs/%s/restore?project_id=%s", id, t.p.Name, id, t.p.ID)
	}
	return domain.NewRun(t.p.ID, r), nil
}

// GetRun returns one run; deleted ones are 404.
func (s *Service) GetRun(ctx context.Context, project, id string) (domain.Run, error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.Run{}, err
	}
	return t.run(ctx, id, false)
}

// DeleteRun marks a run deleted and returns it as it is now.
func (s *Service) DeleteRun(ctx context.Context, project, id string) (domain.Run, error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.Run{}, err
	}
	if _, err := t.run(ctx, id, false); err != nil {
		return domain.Run{}, err
	}
	if err := t.c.DeleteRun(ctx, id); err != nil {
		return domain.Run{}, t.mlflowErr(err)
	}
	return t.run(ctx, id, true)
}

// RestoreRun brings a deleted run back.
func (s *Service) RestoreRun(ctx context.Context, project, id string) (domain.Run, error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.Run{}, err
	}
	r, err := t.run(ctx, id, true)
	if err != nil {
		return domain.Run{}, err
	}
	if r.Info.LifecycleStage != mc.StageDeleted {
		return domain.Run{}, errs.Conflictf("run %s of project %s is not deleted: nothing to restore", id, t.p.Name)
	}
	if err := t.c.RestoreRun(ctx, id); err != nil {
		return domain.Run{}, t.mlflowErr(err)
	}
	return t.run(ctx, id, false)
}

// MetricHistory returns every logged value of one metric of a run.
func (s *Service) MetricHistory(ctx context.Context, project, runID, key string, lp events.ListParams) (events.List[domain.MetricPoint], error) {
	key = strings.TrimPrefix(key, "/")
	if key == "" {
		return events.List[domain.MetricPoint]{}, errs.Invalidf("a metric key is required: GET /runs/{id}/metrics/{key}")
	}
	t, err := s.open(ctx, project)
	if err != nil {
		return events.List[domain.MetricPoint]{}, err
	}
	if res, ok, err := s.directHistory(ctx, t, runID, key, lp); ok {
		return res, err
	}
	r, err := t.run(ctx, runID, false)
	if err != nil {
		return events.List[domain.MetricPoint]{}, err
	}
	// MLflow answers an unknown key with an empty history; say what exists.
	if !r.HasMetric(key) {
		keys := r.MetricKeys()
		sort.Strings(keys)
		have := "none"
		if len(keys) > 0 {
			have = strings.Join(keys, ", ")
		}
		return events.List[domain.MetricPoint]{}, errs.NotFoundf("run %s has no metric %q (its metrics: %s)", r.ID, key, have)
	}
	hist, err := t.c.MetricHistory(ctx, r.ID, key)
	if err != nil {
		return events.List[domain.MetricPoint]{}, t.mlflowErr(err)
	}
	points := make([]domain.MetricPoint, 0, len(hist))
	for _, m := range hist {
		points = append(points, domain.MetricPoint{Key: m.Key, Step: m.Step, Timestamp: m.Timestamp, Value: m.Value})
	}
	return page(points, lp, domain.MetricSortKeys, "step", "metric history")
}
