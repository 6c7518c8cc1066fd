package app

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// ModelSearch is one project's part of GET /search/models.
type ModelSearch struct {
	Name        string // a model name, or a LIKE pattern with '%'
	Alias       string // versions that carry this alias
	TagKey      string // versions whose model or themselves carry this tag
	TagValue    string
	HasTagValue bool
}

// ModelReads is the part of CrossReads that searches registries.
type ModelReads interface {
	SearchVersions(ctx context.Context, projectPath string, s ModelSearch, limit int) (DirectVersions, error)
	ModelTags(ctx context.Context, projectPath string, names []string) (map[string][]mc.Tag, error)
	LatestMetrics(ctx context.Context, projectPath string, runIDs []string) (map[string][]mc.Metric, error)
}

// Deployment is what a model search tells of a deployment.
type Deployment struct {
	ID        string `json:"id"`
	ProjectID string `json:"project_id"`
	ModelID   string `json:"model_id"`
	Version   string `json:"version"`
	Status    string `json:"status"`
	URL       string `json:"url,omitempty"`
}

// Deployments lists every deployment (the caller filters by project).
type Deployments interface {
	All(ctx context.Context) ([]Deployment, error)
}

// UseDeployments lets model searches say which versions are deployed.
func (s *Search) UseDeployments(d Deployments) { s.deployments = d }

// ModelQuery is GET /search/models.
type ModelQuery struct {
	Projects string
	Name     string // name or LIKE pattern
	Alias    string // "champion" or "@champion"
	Tag      string // "key" or "key=value"
}

// FoundVersion is a model version of GET /search/models.
type FoundVersion struct {
	ID          string `json:"id"` // "<model>/<version>", as GET /model-versions names it
	ProjectID   string `json:"project_id"`
	ProjectName string `json:"project_name"`
	mc.ModelVersion
	ModelTags []mc.Tag `json:"model_tags"`
	// RunMetrics are the latest metrics of the version's source run
	// (empty when it has none, or the run is gone).
	RunMetrics []mc.Metric `json:"run_metrics"`
	// Deployments serving the version (not deleted); Served says one
	// of them is running.
	Deployments []Deployment `json:"deployments"`
	Served      bool         `json:"served"`
}

// SearchModels is GET /search/models: model versions of every project
// the caller may view, by model name, alias and tag, ordered by model
// name, then project (in the list's order), then version, newest first.
func (s *Search) SearchModels(ctx context.Context, caller events.Request, q ModelQuery, lp events.ListParams) (events.List[FoundVersion], error) {
	mr, ok := s.cross.(ModelReads)
	if !ok {
		return events.List[FoundVersion]{}, errs.Unavailablef("model search is not available: the tracking service reads no databases")
	}
	if lp.Sort != "" {
		return events.List[FoundVersion]{}, errs.Invalidf("_sort is not taken here: model versions come by model name, project, then version (newest first)")
	}
	lo, hi, err := searchWindow(lp)
	if err != nil {
		return events.List[FoundVersion]{}, err
	}
	ms := ModelSearch{Name: strings.TrimSpace(q.Name), Alias: strings.TrimPrefix(strings.TrimSpace(q.Alias), "@")}
	if t := strings.TrimSpace(q.Tag); t != "" {
		ms.TagKey, ms.TagValue, ms.HasTagValue = strings.Cut(t, "=")
		ms.TagKey = strings.TrimSpace(ms.TagKey)
		if ms.TagKey == "" {
			return events.List[FoundVersion]{}, errs.Invalidf("tag=%q: give key or key=value", q.Tag)
		}
	}
	projects, err := s.projectsOf(ctx, caller, q.Projects)
	if err != nil {
		return events.List[FoundVersion]{}, err
	}
	type part struct {
		p   Project
		res DirectVersions
		err error
	}
	parts := make([]part, len(projects))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(s.Parallel, 1))
	for i, p := range projects {
		parts[i].p = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if p.Store() == "" {
				parts[i].err = ErrUseREST
				return
			}
			parts[i].res, parts[i].err = mr.SearchVersions(ctx, p.Store(), ms, hi)
		}()
	}
	wg.Wait()
	for i := range parts {
		if errors.Is(parts[i].err, ErrUseREST) {
			parts[i].res, parts[i].err = s.restVersions(ctx, parts[i].p, ms, hi)
		}
		if parts[i].err != nil {
			return events.List[FoundVersion]{}, s.dbErr(parts[i].p, parts[i].err)
		}
	}
	// Each part is the first hi of its project in order: their union
	// holds the first hi of all.
	type at struct {
		part int
		v    mc.ModelVersion
	}
	var all []at
	total := 0
	for i, pt := range parts {
		total += pt.res.Total
		for _, v := range pt.res.Versions {
			all = append(all, at{i, v})
		}
	}
	sort.SliceStable(all, func(a, b int) bool {
		x, y := all[a], all[b]
		if x.v.Name != y.v.Name {
			return x.v.Name < y.v.Name
		}
		if x.part != y.part {
			return x.part < y.part
		}
		vx, _ := strconv.Atoi(x.v.Version)
		vy, _ := strconv.Atoi(y.v.Version)
		return vx > vy
	})
	lo, hi = min(lo, len(all)), min(hi, len(all))
	page := all[lo:hi]
	var deps []Deployment
	if s.deployments != nil && len(page) > 0 {
		if deps, err = s.deployments.All(ctx); err != nil {
			return events.List[FoundVersion]{}, err
		}
	}
	items := make([]FoundVersion, len(page))
	byPart := map[int][]int{}
	for i, x := range page {
		byPart[x.part] = append(byPart[x.part], i)
	}
	for pi, idx := range byPart {
		p := parts[pi].p
		var names, runs []string
		for _, i := range idx {
			names = append(names, page[i].v.Name)
			if page[i].v.RunID != "" {
				runs = append(runs, page[i].v.RunID)
			}
		}
		tags, metrics := map[string][]mc.Tag{}, map[string][]mc.Metric{}
		if p.Store() != "" {
			if tags, err = mr.ModelTags(ctx, p.Store(), names); err == nil {
				metrics, err = mr.LatestMetrics(ctx, p.Store(), runs)
			}
			if err != nil && !errors.Is(err, ErrUseREST) {
				return events.List[FoundVersion]{}, s.dbErr(p, err)
			}
		}
		for _, i := range idx {
			v := page[i].v
			f := FoundVersion{ID: v.Name + "/" + v.Version, ProjectID: p.ID, ProjectName: p.Name, ModelVersion: v,
				ModelTags: tags[v.Name], RunMetrics: metrics[v.RunID], Deployments: []Deployment{}}
			if f.ModelTags == nil {
				f.ModelTags = []mc.Tag{}
			}
			if f.RunMetrics == nil {
				f.RunMetrics = []mc.Metric{}
			}
			for _, d := range deps {
				if d.ProjectID == p.ID && d.ModelID == v.Name && d.Version == v.Version && d.Status != "deleted" {
					f.Deployments = append(f.Deployments, d)
					f.Served = f.Served || d.Status == "running"
				}
			}
			items[i] = f
		}
	}
	return events.List[FoundVersion]{Items: items, Total: total}, nil
}

// restVersions searches one project's registry through MLflow's REST API
// (which wakes a sleeping project): every version of the matching
// models, filtered by alias and tag here.
func (s *Search) restVersions(ctx context.Context, p Project, ms ModelSearch, limit int) (DirectVersions, error) {
	if p.Status == "archived" {
		return DirectVersions{}, errs.Conflictf("project %s is archived and its database cannot be searched directly: restore it with PUT /projects/%s/restore, or leave it out with projects=", p.Name, p.ID)
	}
	t, err := s.svc.open(ctx, p.ID)
	if err != nil {
		return DirectVersions{}, err
	}
	filter := ""
	switch {
	case strings.Contains(ms.Name, "%"):
		filter = "name LIKE '" + strings.ReplaceAll(ms.Name, "'", "\\'") + "'"
	case ms.Name != "":
		filter = "name = '" + strings.ReplaceAll(ms.Name, "'", "\\'") + "'"
	}
	vs, err := t.c.SearchModelVersions(ctx, filter)
	if err != nil {
		return DirectVersions{}, t.mlflowErr(err)
	}
	var modelTags map[string][]mc.Tag
	var out DirectVersions
	for _, v := range vs {
		if ms.Alias != "" && !contains(v.Aliases, ms.Alias) {
			continue
		}
		if ms.TagKey != "" {
			ok := hasTag(v.Tags, ms)
			if !ok {
				if modelTags == nil {
					modelTags = map[string][]mc.Tag{}
				}
				if _, read := modelTags[v.Name]; !read {
					m, err := t.c.GetRegisteredModel(ctx, v.Name)
					if err != nil {
						return DirectVersions{}, t.mlflowErr(err)
					}
					modelTags[v.Name] = m.Tags
				}
				ok = hasTag(modelTags[v.Name], ms)
			}
			if !ok {
				continue
			}
		}
		out.Versions = append(out.Versions, v)
	}
	sort.SliceStable(out.Versions, func(a, b int) bool {
		x, y := out.Versions[a], out.Versions[b]
		if x.Name != y.Name {
			return x.Name < y.Name
		}
		vx, _ := strconv.Atoi(x.Version)
		vy, _ := strconv.Atoi(y.Version)
		return vx > vy
	})
	out.Total = len(out.Versions)
	if limit > 0 && len(out.Versions) > limit {
		out.Versions = out.Versions[:limit]
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasTag(tags []mc.Tag, ms ModelSearch) bool {
	for _, t := range tags {
		if t.Key == ms.TagKey && (!ms.HasTagValue || t.Value == ms.TagValue) {
			return true
		}
	}
	return false
}
