package app

import (
	"context"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/events"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// SQLite's order of values, which the merge must share with the
// per-project streams: NULL first, numbers before text, text by bytes;
// DESC reverses the value only.
func TestCompareKeysIsSQLitesOrder(t *testing.T) {
	null := SortKey{Null: true}
	n := func(f float64) SortKey { return SortKey{IsNum: true, Num: f} }
	s := func(v string) SortKey { return SortKey{Str: v} }
	asc := [][2]SortKey{{null, n(-1)}, {n(-1), n(0)}, {n(0), n(math.Inf(1))}, {n(5), s("")}, {s("B"), s("a")}, {s("a"), s("ab")}}
	for _, c := range asc {
		if CompareKeys([]SortKey{c[0]}, []SortKey{c[1]}) >= 0 || CompareKeys([]SortKey{c[1]}, []SortKey{c[0]}) <= 0 {
			t.Errorf("%+v should sort before %+v", c[0], c[1])
		}
		d0, d1 := c[0], c[1]
		d0.Desc, d1.Desc = true, true
		if CompareKeys([]SortKey{d0}, []SortKey{d1}) <= 0 {
			t.Errorf("DESC: %+v should sort after %+v", c[0], c[1])
		}
	}
	// The rank key decides before the value.
	if CompareKeys([]SortKey{n(0), {IsNum: true, Num: 1, Desc: true}}, []SortKey{n(1), {IsNum: true, Num: 9, Desc: true}}) >= 0 {
		t.Error("a run with a value must come before one without, whatever the value")
	}
}

func TestExperimentNamePatterns(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{{"", "x", true}, {"train", "train", true}, {"train", "Train", false}, {"tr_in", "train", false},
		{"tr%", "train", true}, {"%in", "train", true}, {"t_a%", "train", true}, {"T%", "train", false}, {"%", "", true}} {
		if got := nameMatches(c.pattern, c.name); got != c.want {
			t.Errorf("nameMatches(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

// MLflow answers a field named twice in order_by with a 500; the search
// refuses it first, with a 400 that names it.
func TestOrderByTwiceIsA400(t *testing.T) {
	for _, ob := range [][]string{{"metrics.a", "metric.`a` DESC"}, {"start_time", "attributes.created ASC"}, {"params.x", "param.x"}} {
		if err := checkOrderBy(ob); events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "twice") {
			t.Errorf("%q: %v", ob, err)
		}
	}
	if err := checkOrderBy([]string{"metrics.a", "params.a", "tags.a", "start_time"}); err != nil {
		t.Errorf("distinct fields refused: %v", err)
	}
}

type listCatalog []Project

func (l listCatalog) Visible(context.Context, events.Request) ([]Project, error) { return l, nil }

// Projects named in projects= that the caller may not view are answered
// as unknown ones, named in a 404; windows are bounded.
func TestSearchInputs(t *testing.T) {
	s := NewSearch(nil, listCatalog{{ID: "1", Name: "a"}, {ID: "2", Name: "b"}}, nil)
	ps, err := s.projectsOf(context.Background(), events.Request{}, " b, 1 ,b")
	if err != nil || len(ps) != 2 || ps[0].Name != "a" || ps[1].Name != "b" {
		t.Errorf("projects=b,1: %+v %v", ps, err)
	}
	_, err = s.projectsOf(context.Background(), events.Request{}, "a,hidden,3")
	if events.StatusOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), "hidden, 3") {
		t.Errorf("unknown projects: %v", err)
	}
	for _, c := range []struct {
		lp     events.ListParams
		lo, hi int
		bad    bool
	}{{events.ListParams{}, 0, 100, false}, {events.ListParams{Start: 50}, 50, 150, false}, {events.ListParams{Start: 5, End: 1005}, 5, 1005, false},
		{events.ListParams{End: 1001}, 0, 0, true}} {
		lo, hi, err := searchWindow(c.lp)
		if (err != nil) != c.bad || !c.bad && (lo != c.lo || hi != c.hi) {
			t.Errorf("window %+v: %d..%d %v", c.lp, lo, hi, err)
		}
	}
	if _, err := s.SearchRuns(context.Background(), events.Request{}, SearchQuery{GroupBy: "user"}, events.ListParams{}); events.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("group_by=user: %v", err)
	}
	if _, err := s.SearchRuns(context.Background(), events.Request{}, SearchQuery{GroupBy: "project"}, events.ListParams{}); events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "order_by") {
		t.Errorf("group_by without order_by: %v", err)
	}
	if _, err := s.CompareRuns(context.Background(), events.Request{}, "a:1,nope"); events.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("ids without a project: %v", err)
	}
}

// A comparison marks the keys whose values differ, a missing key too.
func TestCompareRowsMarkDifferences(t *testing.T) {
	run := func(params ...string) SearchRun {
		var r SearchRun
		for i := 0; i < len(params); i += 2 {
			r.Data.Params = append(r.Data.Params, mc.Tag{Key: params[i], Value: params[i+1]})
		}
		return r
	}
	got := rows([]SearchRun{run("lr", "0.1", "model", "xgb"), run("lr", "0.1", "model", "lr", "seed", "1")}, func(r mc.Run) map[string]*CompareValue {
		m := map[string]*CompareValue{}
		for _, t := range r.Data.Params {
			v := t.Value
			m[t.Key] = &CompareValue{Value: &v}
		}
		return m
	}, func(a, b *CompareValue) bool { return *a.Value == *b.Value })
	want := map[string]bool{"lr": false, "model": true, "seed": true}
	if len(got) != 3 {
		t.Fatalf("rows: %+v", got)
	}
	for _, r := range got {
		if r.Differs != want[r.Key] {
			t.Errorf("%s: differs %v, want %v", r.Key, r.Differs, want[r.Key])
		}
	}
	if got[2].Values[0] != nil || *got[2].Values[1].Value != "1" {
		t.Errorf("seed values: %+v", got[2].Values)
	}
}
