package app

import (
	"context"
	"errors"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// ErrUseREST is what DirectReads answers when it cannot answer a call
// exactly as MLflow would (another schema revision, an unreadable
// database, a filter it does not translate): the use case then asks
// MLflow's REST API, so the answer is the same either way.
var ErrUseREST = errors.New("answer through MLflow's REST API")

// DirectRunSearch is one page of MLflow's runs/search.
type DirectRunSearch struct {
	// ExperimentIDs to search; nil means every active experiment. Any id
	// that is not an active experiment makes the search ErrUseREST (the
	// REST path says what is wrong with it).
	ExperimentIDs []string
	Filter        string
	OrderBy       []string
	View          string // mc.ViewActive, mc.ViewDeleted or mc.ViewAll
	Offset, Limit int    // Limit 0: to the end
}

// DirectRunPage is one page of runs in MLflow's order and the search's
// true total. Incomplete marks the runs with dataset inputs or logged
// model inputs/outputs, which the use case reads with runs/get.
type DirectRunPage struct {
	Runs       []mc.Run
	Incomplete []bool
	Total      int
}

// DirectReads reads a project's MLflow database itself (read-only, in
// MLflow's schema), so a page costs an index lookup instead of a walk of
// every MLflow page. projectPath is Project.Store(). Every method returns
// ErrUseREST when it cannot answer exactly.
type DirectReads interface {
	SearchRuns(ctx context.Context, projectPath string, s DirectRunSearch) (DirectRunPage, error)
	// RunTimes counts the active runs of each experiment and finds the
	// times of the experiment time rule; experiments without runs are
	// absent.
	RunTimes(ctx context.Context, projectPath string, experimentIDs []string) (map[string]domain.RunTimes, error)
	// Experiments lists the experiments of a view in experiments/search's
	// default order, without tags.
	Experiments(ctx context.Context, projectPath, view string) ([]mc.Experiment, error)
	// ExperimentTags returns the tags of the experiments.
	ExperimentTags(ctx context.Context, projectPath string, experimentIDs []string) (map[string][]mc.Tag, error)
	// CheckFilter returns MLflow's message for a run filter its grammar
	// refuses (the same for every project); nil when it accepts it or
	// only MLflow's server can tell.
	CheckFilter(filter string) error
}

// UseDirectReads turns the direct database reads on.
func (s *Service) UseDirectReads(d DirectReads) { s.direct = d }

// checkGrammar refuses a run filter MLflow's grammar refuses with the
// 400 and message its server would answer, without asking it: a project
// that sleeps is not woken only to refuse it. Without direct reads the
// server judges every filter.
func (s *Service) checkGrammar(filter string) error {
	if s.direct == nil || strings.TrimSpace(filter) == "" {
		return nil
	}
	if err := s.direct.CheckFilter(filter); err != nil {
		return errs.Invalidf("%s", err)
	}
	return nil
}

// directRuns answers ListRuns from the database; ok is false when the REST
// path must answer. _sort (mlpanel's in-memory sort) goes to the REST
// path, which sorts the whole result.
func (s *Service) directRuns(ctx context.Context, t target, q RunQuery, view string, lp events.ListParams) (events.List[domain.Run], bool, error) {
	if s.direct == nil || lp.Sort != "" || t.p.Store() == "" {
		return events.List[domain.Run]{}, false, nil
	}
	var ids []string
	if strings.TrimSpace(q.ExperimentID) != "" {
		for _, id := range strings.Split(q.ExperimentID, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return events.List[domain.Run]{}, false, nil
		}
	}
	limit := 0
	if lp.End > 0 {
		limit = max(lp.End-lp.Start, 0)
		if limit == 0 {
			limit = -1 // an empty window still needs the total
		}
	}
	pg, err := s.direct.SearchRuns(ctx, t.p.Store(), DirectRunSearch{
		ExperimentIDs: ids, Filter: q.Filter, OrderBy: splitClauses(q.OrderBy), View: view,
		Offset: max(lp.Start, 0), Limit: limit,
	})
	if errors.Is(err, ErrUseREST) {
		return events.List[domain.Run]{}, false, nil
	}
	if err != nil {
		return events.List[domain.Run]{}, true, errs.Unavailablef("reading the runs of project %s: %v", t.p.Name, err)
	}
	items := make([]domain.Run, 0, len(pg.Runs))
	for i, r := range pg.Runs {
		if pg.Incomplete[i] {
			// Inputs and outputs as runs/get sends them.
			full, err := t.c.GetRun(ctx, r.Info.RunID)
			if err != nil {
				return events.List[domain.Run]{}, true, t.mlflowErr(err)
			}
			r = full
		}
		items = append(items, domain.NewRun(t.p.ID, r))
	}
	return events.List[domain.Run]{Items: items, Total: pg.Total}, true, nil
}

// directRunTimes is runTimes from the database; ok is false when the REST
// path must answer.
func (s *Service) directRunTimes(ctx context.Context, t target, ids []string) (map[string]domain.RunTimes, bool, error) {
	if s.direct == nil || t.p.Store() == "" {
		return nil, false, nil
	}
	times, err := s.direct.RunTimes(ctx, t.p.Store(), ids)
	if errors.Is(err, ErrUseREST) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, errs.Unavailablef("counting the runs of project %s: %v", t.p.Name, err)
	}
	return times, true, nil
}

// uniqueExperimentKeys are the _sort keys that order experiments without
// their tags and runs (ids and names are unique; a stage keeps MLflow's
// order among equals), so a page needs the tags and run times of its own
// experiments only.
var uniqueExperimentKeys = map[string]bool{"": true, "id": true, "name": true, "lifecycle_stage": true}

// directExperiments answers ListExperiments from the database; ok is false
// when the REST path must answer (a filter: MLflow's experiment grammar is
// not translated here).
func (s *Service) directExperiments(ctx context.Context, t target, q ExperimentQuery, view string, lp events.ListParams) (events.List[domain.Experiment], bool, error) {
	if s.direct == nil || t.p.Store() == "" || strings.TrimSpace(q.Filter) != "" {
		return events.List[domain.Experiment]{}, false, nil
	}
	if _, known := domain.ExperimentSortKeys[lp.Sort]; !known && lp.Sort != "" {
		return events.List[domain.Experiment]{}, false, nil // the REST path says which keys exist
	}
	fail := func(err error) (events.List[domain.Experiment], bool, error) {
		if errors.Is(err, ErrUseREST) {
			return events.List[domain.Experiment]{}, false, nil
		}
		return events.List[domain.Experiment]{}, true, errs.Unavailablef("reading the experiments of project %s: %v", t.p.Name, err)
	}
	exps, err := s.direct.Experiments(ctx, t.p.Store(), view)
	if err != nil {
		return fail(err)
	}
	// complete adds tags and run times to some experiments.
	complete := func(sel []mc.Experiment) ([]domain.Experiment, error) {
		ids := make([]string, len(sel))
		for i, e := range sel {
			ids[i] = e.ExperimentID
		}
		tags, err := s.direct.ExperimentTags(ctx, t.p.Store(), ids)
		if err != nil {
			return nil, err
		}
		times, err := s.direct.RunTimes(ctx, t.p.Store(), ids)
		if err != nil {
			return nil, err
		}
		out := make([]domain.Experiment, len(sel))
		for i, e := range sel {
			e.Tags = tags[e.ExperimentID]
			out[i] = domain.NewExperiment(t.p.ID, e, times[e.ExperimentID])
		}
		return out, nil
	}
	if !uniqueExperimentKeys[lp.Sort] {
		all, err := complete(exps)
		if err != nil {
			return fail(err)
		}
		res, err := page(all, lp, domain.ExperimentSortKeys, "id", "experiments")
		return res, true, err
	}
	// Order the bare experiments, then complete the page only.
	byID := make(map[string]mc.Experiment, len(exps))
	bare := make([]domain.Experiment, len(exps))
	for i, e := range exps {
		byID[e.ExperimentID] = e
		bare[i] = domain.NewExperiment(t.p.ID, e, domain.RunTimes{})
	}
	res, err := page(bare, lp, domain.ExperimentSortKeys, "id", "experiments")
	if err != nil {
		return res, true, err
	}
	sel := make([]mc.Experiment, len(res.Items))
	for i, e := range res.Items {
		sel[i] = byID[e.ID]
	}
	items, err := complete(sel)
	if err != nil {
		return fail(err)
	}
	res.Items = items
	return res, true, nil
}

// DirectHistory is one page of a metric's history and its length.
type DirectHistory struct {
	Points []domain.MetricPoint
	Total  int
}

// HistoryReads is the part of DirectReads that pages a metric's history.
// It answers ErrUseREST when the run is missing or deleted or has no such
// metric, so the REST path says what is wrong.
type HistoryReads interface {
	MetricHistory(ctx context.Context, projectPath, runID, key, sort string, desc bool, offset, limit int) (DirectHistory, error)
}

// directHistory answers MetricHistory from the database, one page at a
// time; ok is false when the REST path must answer. Sorting by value goes
// to the REST path (NaN has no place in an SQL order that matches it).
func (s *Service) directHistory(ctx context.Context, t target, runID, key string, lp events.ListParams) (events.List[domain.MetricPoint], bool, error) {
	h, isH := s.direct.(HistoryReads)
	if s.direct == nil || !isH || t.p.Store() == "" {
		return events.List[domain.MetricPoint]{}, false, nil
	}
	sortKey := lp.Sort
	if sortKey == "" {
		sortKey = "step"
	}
	if sortKey != "step" && sortKey != "timestamp" {
		return events.List[domain.MetricPoint]{}, false, nil
	}
	limit := 0
	if lp.End > 0 {
		if limit = lp.End - lp.Start; limit <= 0 {
			limit = -1
		}
	}
	res, err := h.MetricHistory(ctx, t.p.Store(), strings.TrimSpace(runID), key, sortKey, lp.Desc(), max(lp.Start, 0), limit)
	if errors.Is(err, ErrUseREST) {
		return events.List[domain.MetricPoint]{}, false, nil
	}
	if err != nil {
		return events.List[domain.MetricPoint]{}, true, errs.Unavailablef("reading metric %q of run %s: %v", key, runID, err)
	}
	if res.Points == nil {
		res.Points = []domain.MetricPoint{}
	}
	return events.List[domain.MetricPoint]{Items: res.Points, Total: res.Total}, true, nil
}

// DirectModels is one window of registered models and the search's true
// total.
type DirectModels struct {
	Models []mc.RegisteredModel
	Total  int
}

// DirectVersions is one window of model versions (aliases filled from
// their model) and the search's true total.
type DirectVersions struct {
	Versions []mc.ModelVersion
	Total    int
}

// RegistryReads is the part of DirectReads that answers the registry's
// searches. Limit 0 reads to the end, a negative one reads the total
// only. Filters it does not translate, and a model that does not exist,
// are ErrUseREST.
type RegistryReads interface {
	// RegisteredModels is registered-models/search in name order (desc:
	// reversed).
	RegisteredModels(ctx context.Context, projectPath, filter string, desc bool, offset, limit int) (DirectModels, error)
	// ModelVersions is model-versions/search of one model (all when
	// model is ""), by (name, version) when byID (desc: reversed), else
	// in MLflow's own order.
	ModelVersions(ctx context.Context, projectPath, model string, byID, desc bool, offset, limit int) (DirectVersions, error)
}

// window is the SQL window of lp: offset and limit (0: to the end, -1:
// the total only).
func window(lp events.ListParams) (offset, limit int) {
	if lp.End > 0 {
		if limit = lp.End - lp.Start; limit <= 0 {
			limit = -1
		}
	}
	return max(lp.Start, 0), limit
}

// directModels answers ListRegisteredModels from the database; ok is
// false when the REST path must answer. A sort by name (or id, the same)
// is a window in SQL; other keys sort the whole list, read in MLflow's
// order so equals keep it.
func (s *Service) directModels(ctx context.Context, t target, filter string, lp events.ListParams) (events.List[domain.RegisteredModel], bool, error) {
	rr, isR := s.direct.(RegistryReads)
	if s.direct == nil || !isR || t.p.Store() == "" {
		return events.List[domain.RegisteredModel]{}, false, nil
	}
	if _, known := domain.RegisteredModelSortKeys[lp.Sort]; !known && lp.Sort != "" {
		return events.List[domain.RegisteredModel]{}, false, nil // the REST path says which keys exist
	}
	byName := lp.Sort == "" || lp.Sort == "name" || lp.Sort == "id"
	offset, limit, desc := 0, 0, false
	if byName {
		offset, limit = window(lp)
		desc = lp.Desc()
	}
	res, err := rr.RegisteredModels(ctx, t.p.Store(), filter, desc, offset, limit)
	if errors.Is(err, ErrUseREST) {
		return events.List[domain.RegisteredModel]{}, false, nil
	}
	if err != nil {
		return events.List[domain.RegisteredModel]{}, true, errs.Unavailablef("reading the registered models of project %s: %v", t.p.Name, err)
	}
	items := make([]domain.RegisteredModel, 0, len(res.Models))
	for _, m := range res.Models {
		items = append(items, domain.NewRegisteredModel(t.p.ID, m))
	}
	if byName {
		return events.List[domain.RegisteredModel]{Items: items, Total: res.Total}, true, nil
	}
	out, err := page(items, lp, domain.RegisteredModelSortKeys, "name", "registered models")
	return out, true, err
}

// directVersions answers ListModelVersions from the database; ok is
// false when the REST path must answer. As directModels, a sort by id is
// a window in SQL and other keys sort the whole list.
func (s *Service) directVersions(ctx context.Context, t target, model string, lp events.ListParams) (events.List[domain.ModelVersion], bool, error) {
	rr, isR := s.direct.(RegistryReads)
	if s.direct == nil || !isR || t.p.Store() == "" {
		return events.List[domain.ModelVersion]{}, false, nil
	}
	if _, known := domain.ModelVersionSortKeys[lp.Sort]; !known && lp.Sort != "" {
		return events.List[domain.ModelVersion]{}, false, nil
	}
	byID := lp.Sort == "" || lp.Sort == "id"
	offset, limit, desc := 0, 0, false
	if byID {
		offset, limit = window(lp)
		desc = lp.Desc()
	}
	res, err := rr.ModelVersions(ctx, t.p.Store(), model, byID, desc, offset, limit)
	if errors.Is(err, ErrUseREST) {
		return events.List[domain.ModelVersion]{}, false, nil
	}
	if err != nil {
		return events.List[domain.ModelVersion]{}, true, errs.Unavailablef("reading the model versions of project %s: %v", t.p.Name, err)
	}
	items := make([]domain.ModelVersion, 0, len(res.Versions))
	for _, v := range res.Versions {
		items = append(items, domain.NewModelVersion(t.p.ID, v, nil))
	}
	if byID {
		return events.List[domain.ModelVersion]{Items: items, Total: res.Total}, true, nil
	}
	out, err := page(items, lp, domain.ModelVersionSortKeys, "id", "model versions")
	return out, true, err
}
