package app

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// Catalog lists projects for searches across them.
type Catalog interface {
	// Visible lists the projects the caller of r may view (every project
	// when r is not restricted), archived and sleeping ones too.
	Visible(ctx context.Context, r events.Request) ([]Project, error)
}

// Search answers searches across every project a caller may view. It
// reads each project's database (CrossReads), so sleeping and archived
// projects are searched without waking them; a project whose database it
// cannot read exactly is searched through MLflow's REST API instead,
// which wakes it if it sleeps.
type Search struct {
	svc     *Service
	catalog Catalog
	cross   CrossReads
	// deployments, when set, say which model versions are deployed.
	deployments Deployments
	// Parallel bounds the projects read at once.
	Parallel int
}

// NewSearch returns the search use cases.
func NewSearch(svc *Service, catalog Catalog, cross CrossReads) *Search {
	// A project's search is CPU work in the pure-Go SQLite: two per core
	// keep every core busy while another waits on a read.
	return &Search{svc: svc, catalog: catalog, cross: cross, Parallel: 2 * runtime.GOMAXPROCS(0)}
}

// SearchQuery is GET /search/runs.
type SearchQuery struct {
	Projects       string // names or ids, comma-separated; empty: every visible project
	ExperimentName string // a name, or a LIKE pattern with '%'
	Filter         string // MLflow's run filter
	OrderBy        string // MLflow's order_by clauses, comma-separated
	View           string // active (default), deleted or all
	GroupBy        string // "", project or experiment_name
}

// SearchRun is a run of a search across projects: the run as GET /runs
// sends it, with its project's name and, in a leaderboard, its group.
type SearchRun struct {
	domain.Run
	ProjectName string `json:"project_name"`
	// ExperimentName names the run's experiment: its id means nothing
	// across projects (every project has an experiment 1).
	ExperimentName string `json:"experiment_name"`
	Group          string `json:"group,omitempty"`
}

// DefaultSearchPage and MaxSearchPage bound one window of a search: its
// runs are read whole, so a window is a page, not an export.
const (
	DefaultSearchPage = 100
	MaxSearchPage     = 1000
)

// searchWindow is [lo, hi) of lp within the bounds.
func searchWindow(lp events.ListParams) (lo, hi int, err error) {
	lo, hi = max(lp.Start, 0), lp.End
	if hi == 0 {
		hi = lo + DefaultSearchPage
	}
	if hi-lo > MaxSearchPage {
		return 0, 0, errs.Invalidf("_start=%d, _end=%d asks for %d runs; a search answers at most %d at a time: page with _start and _end", lo, hi, hi-lo, MaxSearchPage)
	}
	return lo, hi, nil
}

// projectsOf resolves the projects of a search: the named ones (each must
// be visible; the others are named in a 404, as if they did not exist),
// or every visible one, in the catalog's order.
func (s *Search) projectsOf(ctx context.Context, caller events.Request, names string) ([]Project, error) {
	all, err := s.catalog.Visible(ctx, caller)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(names) == "" {
		return all, nil
	}
	want := map[string]bool{}
	var order []string
	for _, n := range strings.Split(names, ",") {
		if n = strings.TrimSpace(n); n != "" && !want[n] {
			want[n] = true
			order = append(order, n)
		}
	}
	found := map[string]bool{}
	var out []Project
	for _, p := range all {
		if want[p.ID] || want[p.Name] {
			out = append(out, p)
			found[p.ID], found[p.Name] = true, true
		}
	}
	var unknown []string
	for _, n := range order {
		if !found[n] {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, errs.NotFoundf("no such projects: %s (projects= takes the names or ids that GET /projects lists)", strings.Join(unknown, ", "))
	}
	return out, nil
}

// source is one project's ordered runs: a database stream, or the runs
// MLflow's REST API sent (rest).
type source struct {
	p      Project
	cs     CrossRunSearch
	group  string
	viaDB  bool
	stream KeyStream
	rest   []restRun // what is left of restAll
	// restAll are all the runs of a project searched through MLflow's
	// REST API.
	restAll []restRun
	count   int
	head    RunKey
	ok      bool
}

type restRun struct {
	key RunKey
	run mc.Run
}

func (src *source) next() error {
	if src.viaDB {
		k, ok, err := src.stream.Next()
		if err != nil {
			return fmt.Errorf("searching project %s: %w", src.p.Name, err)
		}
		src.head, src.ok = k, ok
		return nil
	}
	src.ok = len(src.rest) > 0
	if src.ok {
		src.head = src.rest[0].key
		src.rest = src.rest[1:]
	}
	return nil
}

func (src *source) close() {
	if src.stream != nil {
		src.stream.Close()
		src.stream = nil
	}
}

// job is one search of one project.
type job struct {
	p     Project
	cs    CrossRunSearch
	group string
}

// open reads the first run (and, with count, the count) of every job, a
// few at a time; the projects the database cannot answer are searched
// through MLflow's REST API afterwards, one at a time, running ones
// first, so a filter MLflow refuses is refused by a running server
// before any sleeping one is woken. headOnly closes each stream after
// its first run (a leaderboard).
func (s *Search) open(ctx context.Context, jobs []job, limit int, count, headOnly bool) ([]*source, error) {
	srcs := make([]*source, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(s.Parallel, 1))
	for i, j := range jobs {
		srcs[i] = &source{p: j.p, cs: j.cs, group: j.group}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = s.openDB(ctx, srcs[i], limit, count)
			if headOnly {
				srcs[i].close()
			}
		}()
	}
	wg.Wait()
	closeAll := func() {
		for _, src := range srcs {
			src.close()
		}
	}
	var rest []int
	for i, err := range errs {
		switch {
		case errors.Is(err, ErrUseREST):
			rest = append(rest, i)
		case err != nil:
			closeAll()
			return nil, err
		}
	}
	sort.SliceStable(rest, func(a, b int) bool {
		return jobs[rest[a]].p.Status == StatusRunning && jobs[rest[b]].p.Status != StatusRunning
	})
	for _, i := range rest {
		if err := s.openREST(ctx, srcs[i]); err != nil {
			closeAll()
			return nil, err
		}
	}
	return srcs, nil
}

func (s *Search) openDB(ctx context.Context, src *source, limit int, count bool) error {
	if src.p.Store() == "" {
		return ErrUseREST
	}
	st, n, err := s.cross.RunKeys(ctx, src.p.Store(), src.cs, limit, count)
	if err != nil {
		return s.dbErr(src.p, err)
	}
	src.count = n
	src.stream, src.viaDB = st, true
	return src.next()
}

func (s *Search) dbErr(p Project, err error) error {
	if errors.Is(err, ErrUseREST) {
		return err
	}
	return errs.Unavailablef("searching the database of project %s: %v", p.Name, err)
}

// openREST searches one project through MLflow's REST API: every
// matching run (MLflow has no count), in MLflow's order.
func (s *Search) openREST(ctx context.Context, src *source) error {
	cs := src.cs
	if src.p.Status == "archived" {
		return errs.Conflictf(
			"project %s is archived and its database cannot be searched directly (see the tracking service's log for why): restore it with PUT /projects/%s/restore, or leave it out with projects=", src.p.Name, src.p.ID)
	}
	t, err := s.svc.open(ctx, src.p.ID)
	if err != nil {
		return err
	}
	var ids []string
	if cs.ExperimentID != "" {
		ids = []string{cs.ExperimentID}
	} else {
		exps, err := t.c.SearchExperiments(ctx, mc.ViewActive, "")
		if err != nil {
			return t.mlflowErr(err)
		}
		for _, e := range exps {
			if nameMatches(cs.ExperimentName, e.Name) {
				ids = append(ids, e.ExperimentID)
			}
		}
	}
	if len(ids) == 0 {
		src.ok = false
		return nil
	}
	runs, err := t.c.SearchRuns(ctx, mc.RunSearch{ExperimentIDs: ids, Filter: cs.Filter, OrderBy: cs.OrderBy, View: cs.View})
	if err != nil {
		err = t.mlflowErr(err)
		if errs.Is(err, errs.Invalid) {
			return errs.Invalidf("MLflow refused the search (project %s's server checked it; every project speaks the same grammar): %v", src.p.Name, err)
		}
		return err
	}
	for _, r := range runs {
		k, err := s.cross.KeysOf(cs.OrderBy, r)
		if err != nil {
			return errs.Invalidf("order_by %q: the cross-project search orders by metrics.<key>, params.<key>, tags.<key> and run attributes only", strings.Join(cs.OrderBy, ", "))
		}
		id := r.Info.RunID
		if id == "" {
			id = r.Info.RunUUID
		}
		src.rest = append(src.rest, restRun{key: RunKey{RunID: id, Keys: k}, run: r})
	}
	src.count, src.restAll = len(src.rest), src.rest
	return src.next()
}

// nameMatches is the experiment_name rule of the database path: equal,
// or a LIKE pattern ('%' any run of characters, '_' one) when it holds '%'.
func nameMatches(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	if !strings.Contains(pattern, "%") {
		return pattern == name
	}
	return like([]rune(pattern), []rune(name))
}

func like(p, s []rune) bool {
	for len(p) > 0 {
		switch p[0] {
		case '%':
			for i := 0; i <= len(s); i++ {
				if like(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '_':
			if len(s) == 0 {
				return false
			}
		default:
			if len(s) == 0 || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return len(s) == 0
}

// mergeHeap orders the sources by their head run; equal keys (the same
// run id in two projects) by the project's place in the catalog.
type mergeHeap []*mergeItem

type mergeItem struct {
	src *source
	at  int
}

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if c := CompareKeys(h[i].src.head.Keys, h[j].src.head.Keys); c != 0 {
		return c < 0
	}
	return h[i].at < h[j].at
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(*mergeItem)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// hit is one run of a merged window.
type hit struct {
	src   *source
	runID string
	group string
}

// merge takes the runs [lo, hi) of the global order from the sources'
// streams: a k-way merge that reads hi runs at most, never a whole
// project.
func merge(srcs []*source, lo, hi int) ([]hit, error) {
	h := mergeHeap{}
	for i, src := range srcs {
		if src.ok {
			h = append(h, &mergeItem{src: src, at: i})
		}
	}
	heap.Init(&h)
	var out []hit
	for n := 0; n < hi && h.Len() > 0; n++ {
		top := h[0]
		if n >= lo {
			out = append(out, hit{src: top.src, runID: top.src.head.RunID, group: top.src.group})
		}
		if err := top.src.next(); err != nil {
			return nil, err
		}
		if top.src.ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return out, nil
}

// SearchRuns is GET /search/runs: one window of the runs of every
// project the caller may view that match the query, in MLflow's order
// over all of them, with the true total.
func (s *Search) SearchRuns(ctx context.Context, caller events.Request, q SearchQuery, lp events.ListParams) (events.List[SearchRun], error) {
	view, err := viewType(q.View)
	if err != nil {
		return events.List[SearchRun]{}, err
	}
	if err := checkFilter(q.Filter); err != nil {
		return events.List[SearchRun]{}, err
	}
	// Once, before any project: every project speaks MLflow's one
	// grammar, and a refused filter is refused whether or not any project
	// has a database yet (and no sleeping project is woken to refuse it).
	if err := s.checkGrammar(q.Filter); err != nil {
		return events.List[SearchRun]{}, s.refusedFilter(ctx, caller, q, err)
	}
	if lp.Sort != "" {
		return events.List[SearchRun]{}, errs.Invalidf("_sort is not taken here: order with order_by in MLflow's syntax, e.g. order_by=metrics.accuracy DESC")
	}
	lo, hi, err := searchWindow(lp)
	if err != nil {
		return events.List[SearchRun]{}, err
	}
	projects, err := s.projectsOf(ctx, caller, q.Projects)
	if err != nil {
		return events.List[SearchRun]{}, err
	}
	cs := CrossRunSearch{ExperimentName: strings.TrimSpace(q.ExperimentName), Filter: q.Filter, OrderBy: splitClauses(q.OrderBy), View: view}
	if err := checkOrderBy(cs.OrderBy); err != nil {
		return events.List[SearchRun]{}, err
	}
	switch q.GroupBy {
	case "":
	case "project", "experiment_name":
		return s.leaderboard(ctx, projects, cs, q.GroupBy, lo, hi)
	default:
		return events.List[SearchRun]{}, errs.Invalidf("group_by=%q: want project or experiment_name (or leave it out)", q.GroupBy)
	}
	jobs := make([]job, len(projects))
	for i, p := range projects {
		jobs[i] = job{p: p, cs: cs}
	}
	srcs, err := s.open(ctx, jobs, hi, true, false)
	if err != nil {
		return events.List[SearchRun]{}, err
	}
	defer func() {
		for _, src := range srcs {
			src.close()
		}
	}()
	total := 0
	for _, src := range srcs {
		total += src.count
	}
	hits, err := merge(srcs, lo, hi)
	if err != nil {
		return events.List[SearchRun]{}, err
	}
	for _, src := range srcs {
		src.close() // the window is known: free the connections before reading it
	}
	items, err := s.read(ctx, hits)
	if err != nil {
		return events.List[SearchRun]{}, err
	}
	return events.List[SearchRun]{Items: items, Total: total}, nil
}

// read turns a window of hits into runs, one read per project.
func (s *Search) read(ctx context.Context, hits []hit) ([]SearchRun, error) {
	items := make([]SearchRun, len(hits))
	byProject := map[*source][]int{}
	for i, h := range hits {
		byProject[h.src] = append(byProject[h.src], i)
	}
	for src, at := range byProject {
		names, err := s.experimentNames(ctx, src.p)
		if err != nil {
			return nil, err
		}
		runs := map[string]mc.Run{}
		incomplete := map[string]bool{}
		if src.viaDB {
			ids := make([]string, len(at))
			for j, i := range at {
				ids[j] = hits[i].runID
			}
			pg, err := s.cross.RunsByID(ctx, src.p.Store(), ids)
			if err != nil {
				return nil, s.dbErr(src.p, err)
			}
			for j, r := range pg.Runs {
				runs[r.Info.RunID] = r
				incomplete[r.Info.RunID] = pg.Incomplete[j]
			}
		} else {
			for _, r := range src.restAll {
				runs[r.key.RunID] = r.run
			}
		}
		for _, i := range at {
			r, ok := runs[hits[i].runID]
			if !ok {
				// Deleted for good between the search and the read.
				return nil, errs.Unavailablef("run %s of project %s went away during the search: search again", hits[i].runID, src.p.Name)
			}
			if incomplete[hits[i].runID] && src.p.Status == StatusRunning && src.p.InternalURL != "" {
				// Inputs and outputs as runs/get sends them, from a
				// server that runs anyway; a sleeping one is not woken for them.
				if full, err := s.svc.clients(src.p.InternalURL).GetRun(ctx, hits[i].runID); err == nil {
					r = full
				}
			}
			items[i] = SearchRun{Run: domain.NewRun(src.p.ID, r), ProjectName: src.p.Name, ExperimentName: names[r.Info.ExperimentID], Group: hits[i].group}
		}
	}
	return items, nil
}

// orderPrefixes are MLflow's identifier prefixes by what they name.
var orderPrefixes = map[string]string{
	"metric": "metrics", "metrics": "metrics",
	"param": "params", "params": "params", "parameter": "params", "parameters": "params",
	"tag": "tags", "tags": "tags",
	"attribute": "attributes", "attributes": "attributes", "attr": "attributes", "run": "attributes",
}

// checkOrderBy refuses an order_by that names one field twice, which
// MLflow answers with a 500 (INTERNAL_ERROR) rather than a 400.
func checkOrderBy(clauses []string) error {
	seen := map[string]string{}
	for _, c := range clauses {
		f := strings.Fields(c)
		if len(f) == 0 {
			continue
		}
		field := strings.ReplaceAll(f[0], "`", "")
		prefix, key, dotted := strings.Cut(field, ".")
		if !dotted {
			prefix, key = "attributes", field
		}
		if p, ok := orderPrefixes[prefix]; ok {
			prefix = p
		}
		if prefix == "attributes" && (key == "created" || key == "Created") {
			key = "start_time"
		}
		norm := prefix + "." + key
		if first, dup := seen[norm]; dup {
			return errs.Invalidf("order_by names %s twice (%q and %q): give each field once", norm, first, c)
		}
		seen[norm] = c
	}
	return nil
}

// refusedFilter is the 400 of a filter MLflow's grammar refuses, naming
// the projects whose grammar that is (the caller's, at most a few).
func (s *Search) refusedFilter(ctx context.Context, caller events.Request, q SearchQuery, refusal error) error {
	where := "every project speaks MLflow's one grammar"
	if ps, err := s.projectsOf(ctx, caller, q.Projects); err == nil && len(ps) > 0 {
		names := make([]string, 0, refusedNames)
		for _, p := range ps[:min(len(ps), refusedNames)] {
			names = append(names, p.Name)
		}
		more := ""
		if len(ps) > refusedNames {
			more = fmt.Sprintf(" and %d more", len(ps)-refusedNames)
		}
		where = fmt.Sprintf("refused by the grammar of projects %s%s: every project speaks MLflow's one grammar", strings.Join(names, ", "), more)
	}
	return errs.Invalidf("filter %q: %v (%s)", q.Filter, refusal, where)
}

// refusedNames is how many projects a refused filter's message names.
const refusedNames = 5

// checkGrammar is MLflow's refusal of a filter, from the reader's parser
// (none without a reader: the servers judge every filter then).
func (s *Search) checkGrammar(filter string) error {
	if s.cross == nil {
		return nil
	}
	return s.cross.CheckFilter(filter)
}
