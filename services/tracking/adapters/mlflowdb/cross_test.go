package mlflowdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/app"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// catalogOf is the projects service's answer for the projects of a test:
// the list a caller may view, and each project by id. Wake records that a
// search woke a project, which a search answered from the databases must
// never do.
type catalogOf struct {
	mu       sync.Mutex
	projects []app.Project
	woken    []string
}

func (c *catalogOf) Visible(context.Context, events.Request) ([]app.Project, error) {
	return c.projects, nil
}

func (c *catalogOf) Get(_ context.Context, ref string) (app.Project, error) {
	for _, p := range c.projects {
		if p.ID == ref || p.Name == ref {
			return p, nil
		}
	}
	return app.Project{}, events.Errorf(http.StatusNotFound, "no project %s", ref)
}

func (c *catalogOf) Wake(ctx context.Context, ref string) (app.Project, error) {
	c.mu.Lock()
	c.woken = append(c.woken, ref)
	c.mu.Unlock()
	p, err := c.Get(ctx, ref)
	p.Status = app.StatusRunning
	return p, err
}

func (*catalogOf) Used(string) {}

// order is one parsed order_by clause of the hand merge.
type handOrder struct {
	kind, key string
	desc      bool
}

func handParse(clauses []string) []handOrder {
	var out []handOrder
	for _, c := range clauses {
		f := strings.Fields(c)
		prefix, key, dotted := strings.Cut(f[0], ".")
		if !dotted {
			prefix, key = "attributes", prefix // MLflow reads a bare name as an attribute
		}
		key = strings.Trim(key, "`")
		kind := map[string]string{"metrics": "metric", "metric": "metric", "params": "param", "param": "param",
			"tags": "tag", "tag": "tag", "attributes": "attr", "attribute": "attr", "attr": "attr", "run": "attr"}[strings.Trim(prefix, "`")]
		if key == "created" || key == "Created" {
			key = "start_time"
		}
		out = append(out, handOrder{kind, key, len(f) > 1 && strings.EqualFold(f[1], "desc")})
	}
	return out
}

// handLess is MLflow's documented order written out on the runs as its
// REST API sends them: per clause the runs with a value first (metrics:
// then NaN, then none), by the value; then newest start first; then run
// id. Only the interleaving of projects depends on it: each project's own
// order in the hand merge is MLflow's answer as it came.
func handLess(order []handOrder, a, b mc.Run) bool {
	type val struct {
		rank int
		n    float64
		s    string
		num  bool
	}
	get := func(r mc.Run, o handOrder) val {
		switch o.kind {
		case "metric":
			for _, m := range r.Data.Metrics {
				if m.Key == o.key {
					if math.IsNaN(m.Value) {
						return val{rank: 1}
					}
					return val{n: m.Value, num: true}
				}
			}
			return val{rank: 2}
		case "param", "tag":
			list := r.Data.Params
			if o.kind == "tag" {
				list = r.Data.Tags
			}
			for _, t := range list {
				if t.Key == o.key {
					return val{s: t.Value}
				}
			}
			return val{rank: 1}
		}
		i := r.Info
		switch o.key {
		case "start_time":
			return val{n: float64(i.StartTime), num: true}
		case "end_time":
			if i.EndTime == 0 {
				return val{rank: 1}
			}
			return val{n: float64(i.EndTime), num: true}
		case "run_name":
			return val{s: i.RunName}
		case "status":
			return val{s: i.Status}
		case "user_id":
			return val{s: i.UserID}
		case "run_id":
			return val{s: i.RunID}
		}
		return val{s: i.ArtifactURI}
	}
	start := false
	for _, o := range order {
		start = start || (o.kind == "attr" && o.key == "start_time")
		x, y := get(a, o), get(b, o)
		if x.rank != y.rank {
			return x.rank < y.rank
		}
		if x.rank != 0 {
			continue
		}
		c := 0
		switch {
		case x.num && x.n < y.n, !x.num && x.s < y.s:
			c = -1
		case x.num && x.n > y.n, !x.num && x.s > y.s:
			c = 1
		}
		if o.desc {
			c = -c
		}
		if c != 0 {
			return c < 0
		}
	}
	if !start && a.Info.StartTime != b.Info.StartTime {
		return a.Info.StartTime > b.Info.StartTime
	}
	return a.Info.RunID < b.Info.RunID
}

type projRun struct {
	project int
	run     mc.Run
}

// handMerge merges the projects' MLflow answers, each in MLflow's own
// order, by taking the least head each time.
func handMerge(order []handOrder, lists [][]mc.Run) []projRun {
	var out []projRun
	at := make([]int, len(lists))
	for {
		best := -1
		for p, l := range lists {
			if at[p] < len(l) && (best < 0 || handLess(order, l[at[p]], lists[best][at[best]])) {
				best = p
			}
		}
		if best < 0 {
			return out
		}
		out = append(out, projRun{best, lists[best][at[best]]})
		at[best]++
	}
}

// restRuns asks one project's MLflow for every run of the experiments
// named (a name, or a LIKE pattern with '%') in its order.
func restRuns(url, expName, filter string, orderBy []string, view string) ([]mc.Run, error) {
	var exps struct {
		Experiments []mc.Experiment `json:"experiments"`
	}
	if err := post(url, "experiments/search", map[string]any{"max_results": 1000}, &exps); err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range exps.Experiments {
		if expName == "" || e.Name == expName || (strings.Contains(expName, "%") && handLike(expName, e.Name)) {
			ids = append(ids, e.ExperimentID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	raw, err := restSearch(url, app.DirectRunSearch{ExperimentIDs: ids, Filter: filter, OrderBy: orderBy, View: view})
	if err != nil {
		return nil, err
	}
	out := make([]mc.Run, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// handLike matches the patterns this test uses ('%' only).
func handLike(p, s string) bool {
	parts := strings.Split(p, "%")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, part := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(s, part)
		}
		j := strings.Index(s, part)
		if j < 0 {
			return false
		}
		s = s[j+len(part):]
	}
	return true
}

// TestSearchAcrossProjectsAgreesWithMLflow is the differential test of
// GET /search/runs: three projects (one running, one sleeping, one
// archived) filled by MLflow's own code and served by real MLflow
// servers; for generated filters, orderings, views, experiment names and
// windows, the merged answer must equal asking every project's MLflow and
// merging by hand, with the total the sum of what each MLflow found. A
// search the databases answer never wakes a project; a filter MLflow
// refuses is a 400 with MLflow's message and the project that checked it.
func TestSearchAcrossProjectsAgreesWithMLflow(t *testing.T) {
	var fxs [3]fixture
	var wg sync.WaitGroup
	for i := range fxs {
		wg.Add(1)
		go func() { defer wg.Done(); fxs[i] = newFixture(t, 70, 20+i) }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hc := &http.Client{Timeout: time.Minute}
	statuses := []string{app.StatusRunning, "sleeping", "archived"}
	mixed := &catalogOf{}
	running := &catalogOf{}
	for i, fx := range fxs {
		p := app.Project{ID: fmt.Sprint(i + 1), Name: fmt.Sprintf("proj-%d", i+1), Status: statuses[i], InternalURL: fx.url, Path: fx.dir}
		mixed.projects = append(mixed.projects, p)
		p.Status = app.StatusRunning
		running.projects = append(running.projects, p)
	}
	rd := New(log)
	defer rd.Close()
	searchOf := func(c *catalogOf) *app.Search {
		svc := app.New(c, func(u string) *mc.Client { return mc.New(u, hc) }, log, func() int64 { return 1 })
		svc.UseDirectReads(rd)
		return app.NewSearch(svc, c, rd)
	}
	mixedSearch, runningSearch := searchOf(mixed), searchOf(running)

	all, err := restSearch(fxs[0].url, app.DirectRunSearch{ExperimentIDs: []string{"1", "2", "3", "4"}, View: mc.ViewAll})
	if err != nil {
		t.Fatal(err)
	}
	g := filterGen{r: rand.New(rand.NewSource(16)), ids: runIDs(all)}
	// Each project's experiment names as its MLflow lists them: a run of
	// the answer must carry its experiment's name.
	expNameOf := map[string]map[string]string{}
	for i, fx := range fxs {
		var exps struct {
			Experiments []mc.Experiment `json:"experiments"`
		}
		if err := post(fx.url, "experiments/search", map[string]any{"max_results": 1000}, &exps); err != nil {
			t.Fatal(err)
		}
		names := map[string]string{}
		for _, e := range exps.Experiments {
			names[e.ExperimentID] = e.Name
		}
		expNameOf[fmt.Sprint(i+1)] = names
	}
	expNames := []string{"", "", "alpha", "Beta", "%a", "g%", "nope"}
	views := map[string]string{"active": mc.ViewActive, "deleted": mc.ViewDeleted, "all": mc.ViewAll}
	viewNames := []string{"active", "active", "deleted", "all"}
	windows := [][2]int{{0, 10}, {0, 0}, {7, 19}, {250, 260}}
	var answered, restAnswered, refused, upFront, boards int
	for i := 0; i < 120; i++ {
		orderBy := g.order()
		q := app.SearchQuery{Filter: g.filter(), OrderBy: strings.Join(orderBy, ", "), View: viewNames[g.r.Intn(len(viewNames))],
			ExperimentName: expNames[g.r.Intn(len(expNames))]}
		w := windows[g.r.Intn(len(windows))]
		lp := events.ListParams{Start: w[0], End: w[1]}
		label := fmt.Sprintf("case %d filter %q order %q view %s exp %q window %v", i, q.Filter, q.OrderBy, q.View, q.ExperimentName, w)

		var lists [][]mc.Run
		var restErr error
		for _, fx := range fxs {
			runs, err := restRuns(fx.url, q.ExperimentName, q.Filter, orderBy, views[q.View])
			if err != nil {
				restErr = err
				break
			}
			lists = append(lists, runs)
		}
		_, fErr := parseFilter(q.Filter)
		_, oErr := parseOrder(orderBy)
		translatable := fErr == nil && oErr == nil
		var grammar *grammarError
		refusedUpFront := errors.As(fErr, &grammar)
		if refusedUpFront {
			upFront++
			if restErr == nil {
				t.Errorf("%s: refused up front (%v), but MLflow accepts it", label, grammar)
			}
		}

		mixed.woken = nil
		got, err := mixedSearch.SearchRuns(ctx, events.Request{}, q, lp)
		if restErr != nil {
			refused++
			switch {
			case refusedUpFront:
				if events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), grammar.msg) {
					t.Errorf("%s: MLflow refuses (%v); want a 400 with the parser's %q, got %v", label, restErr, grammar.msg, err)
				}
			case events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "proj-1") && !strings.Contains(err.Error(), "twice"):
				t.Errorf("%s: MLflow refuses (%v); want a 400 naming proj-1, got %v", label, restErr, err)
			}
			if len(mixed.woken) > 0 {
				t.Errorf("%s: a refused filter woke %v (the running project should have refused it first)", label, mixed.woken)
			}
			continue
		}
		if translatable {
			if len(mixed.woken) > 0 {
				t.Errorf("%s: a search the databases answer woke %v", label, mixed.woken)
			}
		} else {
			// The archived project cannot be asked through MLflow's REST API.
			if events.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "proj-3 is archived") {
				t.Errorf("%s: want a 409 naming the archived proj-3, got %v", label, err)
			}
			got, err = runningSearch.SearchRuns(ctx, events.Request{}, q, lp)
			restAnswered++
		}
		if err != nil {
			t.Errorf("%s: %v", label, err)
			continue
		}
		answered++
		want := handMerge(handParse(orderBy), lists)
		lo, hi := w[0], w[1]
		if hi == 0 {
			hi = lo + app.DefaultSearchPage
		}
		lo, hi = min(lo, len(want)), min(hi, len(want))
		var wantIDs, gotIDs []string
		for _, r := range want[lo:hi] {
			wantIDs = append(wantIDs, fmt.Sprintf("%d:%s", r.project+1, r.run.Info.RunID))
		}
		for _, r := range got.Items {
			gotIDs = append(gotIDs, r.ProjectID+":"+r.ID)
			if r.ProjectName != "proj-"+r.ProjectID {
				t.Errorf("%s: run %s names project %q, want proj-%s", label, r.ID, r.ProjectName, r.ProjectID)
			}
			if want := expNameOf[r.ProjectID][r.Info.ExperimentID]; r.ExperimentName != want || want == "" {
				t.Errorf("%s: run %s of experiment %s names experiment %q, want %q", label, r.ID, r.Info.ExperimentID, r.ExperimentName, want)
			}
		}
		if !reflect.DeepEqual(gotIDs, wantIDs) || got.Total != len(want) {
			t.Errorf("%s:\n got %d (total %d) %v\nwant %d (total %d) %v", label, len(gotIDs), got.Total, head(gotIDs), len(wantIDs), len(want), head(wantIDs))
			continue
		}
		for j, r := range got.Items {
			w := want[lo+j].run
			sortTags(w.Data.Params)
			sortTags(w.Data.Tags)
			sortTags(r.Data.Params)
			sortTags(r.Data.Tags)
			if fmt.Sprint(r.Info) != fmt.Sprint(w.Info) || fmt.Sprint(r.Data.Params) != fmt.Sprint(w.Data.Params) || fmt.Sprint(r.Data.Tags) != fmt.Sprint(w.Data.Tags) || len(r.Data.Metrics) != len(w.Data.Metrics) {
				t.Errorf("%s: run %s differs from MLflow's:\n got %+v\nwant %+v", label, r.ID, r.Run.Run, w)
				break
			}
		}

		// The leaderboards of the same search.
		if len(orderBy) == 0 {
			continue
		}
		order := handParse(orderBy)
		for _, by := range []string{"project", "experiment_name"} {
			bq := q
			bq.GroupBy = by
			search := mixedSearch
			if !translatable {
				search = runningSearch
			}
			board, err := search.SearchRuns(ctx, events.Request{}, bq, events.ListParams{})
			if err != nil {
				t.Errorf("%s group_by %s: %v", label, by, err)
				continue
			}
			boards++
			bestOf := map[string]projRun{}
			var groups []string
			for p, l := range lists {
				expNames := map[string]string{}
				var exps struct {
					Experiments []mc.Experiment `json:"experiments"`
				}
				if err := post(fxs[p].url, "experiments/search", map[string]any{"max_results": 1000}, &exps); err != nil {
					t.Fatal(err)
				}
				for _, e := range exps.Experiments {
					expNames[e.ExperimentID] = e.Name
				}
				for _, r := range l { // each project's list is in MLflow's order: the first of a group is its best
					grp := fmt.Sprintf("proj-%d", p+1)
					if by == "experiment_name" {
						grp = expNames[r.Info.ExperimentID]
					}
					cur, seen := bestOf[grp]
					if !seen {
						groups = append(groups, grp)
					}
					if !seen || handLess(order, r, cur.run) {
						bestOf[grp] = projRun{p, r}
					}
				}
			}
			var rows []string
			var kept []projRun
			for _, grp := range groups {
				b := bestOf[grp]
				if !hasFirst(order[0], b.run) {
					continue
				}
				kept = append(kept, b)
			}
			for i := 1; i < len(kept); i++ { // insertion sort by the best runs
				for j := i; j > 0 && handLess(order, kept[j].run, kept[j-1].run); j-- {
					kept[j], kept[j-1] = kept[j-1], kept[j]
				}
			}
			for _, b := range kept {
				rows = append(rows, fmt.Sprintf("%d:%s", b.project+1, b.run.Info.RunID))
			}
			var gotRows []string
			for _, r := range board.Items {
				gotRows = append(gotRows, r.ProjectID+":"+r.ID)
			}
			if !reflect.DeepEqual(gotRows, rows) || board.Total != len(rows) {
				t.Errorf("%s group_by %s:\n got %v (total %d)\nwant %v", label, by, gotRows, board.Total, rows)
			}
		}
	}
	t.Logf("%d searches equal to the hand merge (%d through MLflow's REST API), %d refused by MLflow (%d of them up front), %d leaderboards", answered, restAnswered, refused, upFront, boards)
	if answered < 60 || refused < 5 || upFront < 3 || restAnswered < 5 || boards < 40 {
		t.Errorf("the generator must exercise every path: %d answered, %d through REST, %d refused (%d up front), %d leaderboards", answered, restAnswered, refused, upFront, boards)
	}
}

// hasFirst reports whether a run has a value for the clause (a leaderboard
// leaves out groups whose best run has none).
func hasFirst(o handOrder, r mc.Run) bool {
	switch o.kind {
	case "metric":
		for _, m := range r.Data.Metrics {
			if m.Key == o.key {
				return !math.IsNaN(m.Value)
			}
		}
		return false
	case "param", "tag":
		list := r.Data.Params
		if o.kind == "tag" {
			list = r.Data.Tags
		}
		for _, t := range list {
			if t.Key == o.key {
				return true
			}
		}
		return false
	}
	return !(o.key == "end_time" && r.Info.EndTime == 0)
}

// TestRefusedFilterIsA400WhateverProjectsExist: a filter MLflow's grammar
// refuses is a 400 with MLflow's message before any project is read:
// with projects that have no database yet (never started) and with no
// project at all, where a search used to answer 200 and an empty list.
func TestRefusedFilterIsA400WhateverProjectsExist(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rd := New(log)
	defer rd.Close()
	fresh := &catalogOf{projects: []app.Project{
		{ID: "1", Name: "fresh-1", Status: "sleeping", Path: t.TempDir()},
		{ID: "2", Name: "fresh-2", Status: "sleeping", Path: t.TempDir()},
	}}
	cases := map[string]string{
		"metrics.accuracy = 'high'":           "Expected numeric value type for metric",
		"params.lr > '0.1'":                   "Invalid comparator '>'",
		"params.lr > 0.1":                     "Expected a quoted string value for parameter",
		"params.lr = 0.01":                    "Expected a quoted string value for parameter",
		"foo.bar = 'x'":                       "Invalid entity type 'foo'",
		"attributes.start_time > 'yesterday'": "Expected numeric value type for numeric attribute: start_time",
		"params.a = 'x' OR params.a = 'y'":    "AND only",
		"datasets.source = 'x'":               "Invalid dataset key 'source'",
		"metrics.loss LIKE '0.%'":             "Expected numeric value type for metric",
		"metrics.loss LIKE 0.5":               "Invalid comparator 'LIKE'",
		"tags.team <> 'nlp'":                  "Invalid comparator '<>'",
		"metrics.acc > 0.9 and tags.t < 'b'":  "Invalid comparator '<'",
	}
	for _, c := range []*catalogOf{fresh, {}} {
		svc := app.New(c, func(u string) *mc.Client { return mc.New(u, http.DefaultClient) }, log, func() int64 { return 1 })
		svc.UseDirectReads(rd)
		search := app.NewSearch(svc, c, rd)
		for filter, want := range cases {
			_, err := search.SearchRuns(context.Background(), events.Request{}, app.SearchQuery{Filter: filter}, events.ListParams{})
			if events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), want) {
				t.Errorf("%d projects, filter %q: got %v; want a 400 saying %q", len(c.projects), filter, err, want)
			}
		}
		if len(c.woken) > 0 {
			t.Errorf("a refused filter woke %v", c.woken)
		}
		// What MLflow accepts still answers: an empty page of projects
		// without runs.
		got, err := search.SearchRuns(context.Background(), events.Request{}, app.SearchQuery{Filter: "metrics.accuracy > 0.9 and params.lr = '0.01'"}, events.ListParams{})
		if err != nil || got.Total != 0 || len(got.Items) != 0 {
			t.Errorf("%d projects, a valid filter: %v, %+v; want an empty page", len(c.projects), err, got)
		}
	}
}
