package app

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// leaderboard answers GET /search/runs?group_by=...: the best run of
// each group (a project, or an experiment name across projects) by the
// first order_by clause, the groups in the order of their best runs. A
// group whose best run lacks that clause's value (no run logged the
// metric) is left out: it has nothing to rank.
func (s *Search) leaderboard(ctx context.Context, projects []Project, cs CrossRunSearch, groupBy string, lo, hi int) (events.List[SearchRun], error) {
	if len(cs.OrderBy) == 0 {
		return events.List[SearchRun]{}, errs.Invalidf("group_by=%s needs order_by to say what \"best\" means, e.g. order_by=metrics.accuracy DESC", groupBy)
	}
	var jobs []job
	for _, p := range projects {
		if groupBy == "project" {
			jobs = append(jobs, job{p: p, cs: cs, group: p.Name})
			continue
		}
		exps, err := s.experiments(ctx, p, cs.ExperimentName)
		if err != nil {
			return events.List[SearchRun]{}, err
		}
		for _, e := range exps {
			c := cs
			c.ExperimentID = e.ID
			jobs = append(jobs, job{p: p, cs: c, group: e.Name})
		}
	}
	srcs, err := s.open(ctx, jobs, 1, false, true)
	if err != nil {
		return events.List[SearchRun]{}, err
	}
	best := map[string]int{} // group -> index in srcs
	var groups []string
	for i, src := range srcs {
		// Keys[0] is the first clause's presence rank: 0 is a value.
		if !src.ok || src.head.Keys[0].Num != 0 {
			continue
		}
		j, seen := best[src.group]
		if !seen {
			groups = append(groups, src.group)
		}
		if !seen || CompareKeys(src.head.Keys, srcs[j].head.Keys) < 0 {
			best[src.group] = i
		}
	}
	sort.SliceStable(groups, func(a, b int) bool {
		x, y := srcs[best[groups[a]]], srcs[best[groups[b]]]
		if c := CompareKeys(x.head.Keys, y.head.Keys); c != 0 {
			return c < 0
		}
		return groups[a] < groups[b]
	})
	total := len(groups)
	lo, hi = min(lo, total), min(hi, total)
	hits := make([]hit, 0, hi-lo)
	for _, g := range groups[lo:hi] {
		src := srcs[best[g]]
		hits = append(hits, hit{src: src, runID: src.head.RunID, group: g})
	}
	items, err := s.read(ctx, hits)
	if err != nil {
		return events.List[SearchRun]{}, err
	}
	return events.List[SearchRun]{Items: items, Total: total}, nil
}

// experiments lists a project's active experiments that experiment_name
// selects, from its database or else through MLflow's REST API.
func (s *Search) experiments(ctx context.Context, p Project, name string) ([]ExperimentRef, error) {
	if p.Store() != "" {
		exps, err := s.cross.ActiveExperiments(ctx, p.Store(), name)
		if !errors.Is(err, ErrUseREST) {
			if err != nil {
				return nil, s.dbErr(p, err)
			}
			return exps, nil
		}
	}
	if p.Status == "archived" {
		return nil, errs.Conflictf("project %s is archived and its database cannot be searched directly: restore it with PUT /projects/%s/restore, or leave it out with projects=", p.Name, p.ID)
	}
	t, err := s.svc.open(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	all, err := t.c.SearchExperiments(ctx, mc.ViewActive, "")
	if err != nil {
		return nil, t.mlflowErr(err)
	}
	var out []ExperimentRef
	for _, e := range all {
		if nameMatches(strings.TrimSpace(name), e.Name) {
			out = append(out, ExperimentRef{ID: e.ExperimentID, Name: e.Name})
		}
	}
	return out, nil
}

// experimentNames maps the ids of a project's active experiments (the
// only ones a search reads) to their names.
func (s *Search) experimentNames(ctx context.Context, p Project) (map[string]string, error) {
	exps, err := s.experiments(ctx, p, "")
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(exps))
	for _, e := range exps {
		names[e.ID] = e.Name
	}
	return names, nil
}
