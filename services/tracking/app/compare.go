package app

import (
	"context"
	"errors"
	"math"
	"sort"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// MaxCompareRuns bounds one comparison: it carries every metric's whole
// history of each run.
const MaxCompareRuns = 20

// MaxHistoryPoints bounds one metric's history of one run in a
// comparison (the first points by step); Truncated says when it cut.
const MaxHistoryPoints = 10000

// HistoryLists is the part of CrossReads that reads the metric histories
// of a run (deleted runs too), at most max points per metric by step.
type HistoryLists interface {
	MetricHistories(ctx context.Context, projectPath, runID string, max int) (map[string][]domain.MetricPoint, error)
}

// Comparison is GET /compare/runs: the runs side by side.
type Comparison struct {
	// Runs in the order asked for; Keys name them "<project>:<run id>".
	Runs []SearchRun `json:"runs"`
	Keys []string    `json:"keys"`
	// Params and Metrics are the union of the runs' keys, sorted; Values
	// are aligned with Runs (absent: the run has no such key).
	Params  []CompareRow `json:"params"`
	Metrics []CompareRow `json:"metrics"`
	// Histories are every metric's history of every run, for overlay.
	Histories []CompareHistory `json:"histories"`
}

// CompareRow is one param or metric across the runs.
type CompareRow struct {
	Key    string          `json:"key"`
	Values []*CompareValue `json:"values"`
	// Differs is true when the runs do not all have the same value
	// (a run without the key differs from one with it).
	Differs bool `json:"differs"`
}

// CompareValue is one run's value of a param (Value) or of a metric's
// latest value (Metric).
type CompareValue struct {
	Value  *string    `json:"value,omitempty"`
	Metric *mc.Metric `json:"metric,omitempty"`
}

// CompareHistory is one metric's history of one run.
type CompareHistory struct {
	Run       string               `json:"run"` // "<project>:<run id>", as in Keys
	Key       string               `json:"key"`
	Points    []domain.MetricPoint `json:"points"`
	Truncated bool                 `json:"truncated,omitempty"`
}

// CompareRuns is GET /compare/runs?ids=<project>:<run>,...: runs of any
// projects the caller may view, side by side. A run of a project the
// caller may not view is answered as one that does not exist.
func (s *Search) CompareRuns(ctx context.Context, caller events.Request, idList string) (Comparison, error) {
	var refs [][2]string
	seen := map[string]bool{}
	for _, part := range strings.Split(idList, ",") {
		part = strings.TrimSpace(part)
		if part == "" || seen[part] {
			continue
		}
		seen[part] = true
		proj, run, ok := strings.Cut(part, ":")
		proj, run = strings.TrimSpace(proj), strings.TrimSpace(run)
		if !ok || proj == "" || run == "" {
			return Comparison{}, errs.Invalidf("ids: %q is not <project>:<run id>; give runs as ids=<project name or id>:<run id>,... (the project_id and id of GET /search/runs)", part)
		}
		refs = append(refs, [2]string{proj, run})
	}
	if len(refs) == 0 {
		return Comparison{}, errs.Invalidf("ids is required: the runs to compare as ids=<project>:<run id>,<project>:<run id>")
	}
	if len(refs) > MaxCompareRuns {
		return Comparison{}, errs.Invalidf("ids names %d runs; compare at most %d at a time", len(refs), MaxCompareRuns)
	}
	visible, err := s.catalog.Visible(ctx, caller)
	if err != nil {
		return Comparison{}, err
	}
	out := Comparison{Params: []CompareRow{}, Metrics: []CompareRow{}, Histories: []CompareHistory{}}
	for _, ref := range refs {
		var p *Project
		for i := range visible {
			if visible[i].ID == ref[0] || visible[i].Name == ref[0] {
				p = &visible[i]
				break
			}
		}
		if p == nil {
			return Comparison{}, errs.NotFoundf("run %s not found: no project %s (see GET /projects)", ref[1], ref[0])
		}
		run, hist, err := s.compared(ctx, *p, ref[1])
		if err != nil {
			return Comparison{}, err
		}
		key := p.ID + ":" + run.Info.RunID
		sr := SearchRun{Run: domain.NewRun(p.ID, run), ProjectName: p.Name}
		// The name is a label here: a run of a deleted experiment, or a
		// project whose experiments cannot be listed, is compared without it.
		if names, err := s.experimentNames(ctx, *p); err == nil {
			sr.ExperimentName = names[run.Info.ExperimentID]
		}
		out.Runs = append(out.Runs, sr)
		out.Keys = append(out.Keys, key)
		names := make([]string, 0, len(hist))
		for k := range hist {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			pts := hist[k]
			h := CompareHistory{Run: key, Key: k, Points: pts}
			if len(pts) > MaxHistoryPoints {
				h.Points, h.Truncated = pts[:MaxHistoryPoints], true
			}
			out.Histories = append(out.Histories, h)
		}
	}
	out.Params = rows(out.Runs, func(r mc.Run) map[string]*CompareValue {
		m := map[string]*CompareValue{}
		for _, t := range r.Data.Params {
			v := t.Value
			m[t.Key] = &CompareValue{Value: &v}
		}
		return m
	}, func(a, b *CompareValue) bool { return *a.Value == *b.Value })
	out.Metrics = rows(out.Runs, func(r mc.Run) map[string]*CompareValue {
		m := map[string]*CompareValue{}
		for _, x := range r.Data.Metrics {
			x := x
			m[x.Key] = &CompareValue{Metric: &x}
		}
		return m
	}, func(a, b *CompareValue) bool {
		x, y := a.Metric.Value, b.Metric.Value
		return x == y || math.IsNaN(x) && math.IsNaN(y)
	})
	return out, nil
}

// rows aligns the runs' values of each key and marks the keys whose
// values differ.
func rows(runs []SearchRun, values func(mc.Run) map[string]*CompareValue, same func(a, b *CompareValue) bool) []CompareRow {
	per := make([]map[string]*CompareValue, len(runs))
	keys := map[string]bool{}
	for i, r := range runs {
		per[i] = values(r.Run.Run)
		for k := range per[i] {
			keys[k] = true
		}
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]CompareRow, 0, len(names))
	for _, k := range names {
		row := CompareRow{Key: k, Values: make([]*CompareValue, len(runs))}
		for i := range runs {
			row.Values[i] = per[i][k]
			if first := row.Values[0]; i > 0 && (first == nil) != (row.Values[i] == nil) ||
				i > 0 && first != nil && row.Values[i] != nil && !same(first, row.Values[i]) {
				row.Differs = true
			}
		}
		out = append(out, row)
	}
	return out
}

// compared reads one run and its histories from the project's database,
// or through MLflow's REST API (which wakes a sleeping project) when the
// database cannot answer.
func (s *Search) compared(ctx context.Context, p Project, runID string) (mc.Run, map[string][]domain.MetricPoint, error) {
	hl, canHist := s.cross.(HistoryLists)
	if p.Store() != "" && canHist {
		pg, err := s.cross.RunsByID(ctx, p.Store(), []string{runID})
		if err == nil && len(pg.Runs) == 0 {
			return mc.Run{}, nil, errs.NotFoundf("run %s not found in project %s", runID, p.Name)
		}
		if err == nil {
			run := pg.Runs[0]
			hist, err := hl.MetricHistories(ctx, p.Store(), runID, MaxHistoryPoints+1)
			if err == nil {
				return run, hist, nil
			}
		}
		if err != nil && !errors.Is(err, ErrUseREST) {
			return mc.Run{}, nil, s.dbErr(p, err)
		}
	}
	if p.Status == "archived" {
		return mc.Run{}, nil, errs.Conflictf("project %s is archived and its database cannot be read directly: restore it with PUT /projects/%s/restore", p.Name, p.ID)
	}
	t, err := s.svc.open(ctx, p.ID)
	if err != nil {
		return mc.Run{}, nil, err
	}
	run, err := t.c.GetRun(ctx, runID)
	if err != nil {
		return mc.Run{}, nil, t.mlflowErr(err)
	}
	hist := map[string][]domain.MetricPoint{}
	for _, m := range run.Data.Metrics {
		ms, err := t.c.MetricHistory(ctx, runID, m.Key)
		if err != nil {
			return mc.Run{}, nil, t.mlflowErr(err)
		}
		pts := make([]domain.MetricPoint, len(ms))
		for i, x := range ms {
			pts[i] = domain.MetricPoint{Key: x.Key, Step: x.Step, Timestamp: x.Timestamp, Value: x.Value}
		}
		sort.SliceStable(pts, func(i, j int) bool { return domain.MetricSortKeys["step"](pts[i], pts[j]) })
		hist[m.Key] = pts
	}
	return run, hist, nil
}
