package e2e

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// searchRun is a run of GET /search/runs as a client reads it.
type searchRun struct {
	ID          string `json:"id"`
	ProjectID   string `json:"project_id"`
	ProjectName string `json:"project_name"`
	Group       string `json:"group"`
	Data        struct {
		Metrics []struct {
			Key   string  `json:"key"`
			Value float64 `json:"value"`
		} `json:"metrics"`
	} `json:"data"`
}

func (r searchRun) metric(key string) float64 {
	for _, m := range r.Data.Metrics {
		if m.Key == key {
			return m.Value
		}
	}
	return -1
}

// TestSearchAcrossProjects: runs logged by the stock MLflow client into
// three projects of two owners are searched, ordered and ranked as one
// list through the gateway, a viewer sees only what is shared with them
// (not even in the total), a sleeping project is searched without being
// woken, runs of two projects are compared, and bad input gets the
// answers the issue names.
func TestSearchAcrossProjects(t *testing.T) {
	tp := startTeamPanel(t)
	alice := tp.newUser(t, "alice", false)
	bob := tp.newUser(t, "bob", false)
	carol := tp.newUser(t, "carol", false)

	expect(t, tp.as(t, alice, "POST", "/projects", map[string]string{"name": "srch-a", "idleTimeout": "5s"}), 201)
	expect(t, tp.as(t, alice, "POST", "/projects", map[string]string{"name": "srch-b"}), 201)
	expect(t, tp.as(t, bob, "POST", "/projects", map[string]string{"name": "srch-c"}), 201)
	expect(t, tp.as(t, alice, "PUT", "/projects/srch-b/members/carol", map[string]string{"role": "viewer"}), 200)
	owners := map[string]string{"srch-a": alice, "srch-b": alice, "srch-c": bob}
	accs := map[string][]float64{"srch-a": {0.91, 0.55, 0.97}, "srch-b": {0.93, 0.60}, "srch-c": {0.99, 0.10}}
	ids := map[string][]string{} // project -> run ids in the order of accs
	for _, name := range []string{"srch-a", "srch-b", "srch-c"} {
		expect(t, tp.as(t, owners[name], "PUT", "/projects/"+name+"/run", nil), 200)
	}
	for _, name := range []string{"srch-a", "srch-b", "srch-c"} {
		deadline := time.Now().Add(3 * time.Minute)
		for tp.projectStatus(t, name) != "running" {
			if time.Now().After(deadline) {
				t.Fatalf("project %s did not start", name)
			}
			time.Sleep(300 * time.Millisecond)
		}
		var vals []string
		for _, a := range accs[name] {
			vals = append(vals, fmt.Sprint(a))
		}
		out := python(t, `
import mlflow
from mlflow import MlflowClient
mlflow.set_experiment("shared")
for i, acc in enumerate([`+strings.Join(vals, ", ")+`]):
    with mlflow.start_run() as run:
        mlflow.log_param("model", "xgb" if acc > 0.9 else "lr")
        mlflow.log_param("project", "`+name+`")
        for step in range(3):
            mlflow.log_metric("accuracy", acc - (2 - step) * 0.01, step=step)
        print("run=" + run.info.run_id)
        if acc > 0.92:
            c = MlflowClient()
            name = "clf-`+name+`"
            c.create_registered_model(name, tags={"task": "vision"})
            v = c.create_model_version(name, run.info.artifact_uri + "/model", run_id=run.info.run_id)
            c.set_registered_model_alias(name, "champion", v.version)
`, "MLFLOW_TRACKING_URI="+tp.URL+"/projects/"+name+"/mlflow", "MLFLOW_TRACKING_TOKEN="+owners[name])
		for _, l := range strings.Split(out, "\n") {
			if id, ok := strings.CutPrefix(strings.TrimSpace(l), "run="); ok {
				ids[name] = append(ids[name], id)
			}
		}
		if len(ids[name]) != len(accs[name]) {
			t.Fatalf("%s: logged %v:\n%s", name, ids[name], out)
		}
	}
	// srch-a sleeps once idle; the searches below must leave it asleep.
	deadline := time.Now().Add(2 * time.Minute)
	for tp.projectStatus(t, "srch-a") != "sleeping" {
		if time.Now().After(deadline) {
			t.Fatalf("srch-a did not fall asleep: %s", tp.projectStatus(t, "srch-a"))
		}
		time.Sleep(500 * time.Millisecond)
	}

	search := func(token, query string) ([]searchRun, int, response) {
		t.Helper()
		r := tp.as(t, token, "GET", "/search/runs?"+query, nil)
		var runs []searchRun
		total := -1
		if r.Status == http.StatusOK {
			r.JSON(t, &runs)
			fmt.Sscan(r.Header.Get("X-Total-Count"), &total)
		}
		return runs, total, r
	}
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	names := func(runs []searchRun) []string {
		var out []string
		for _, r := range runs {
			out = append(out, fmt.Sprintf("%s:%.2f", r.ProjectName, r.metric("accuracy")))
		}
		return out
	}

	// The admin's global order over all three projects.
	runs, total, r := search(tp.admin, q("filter", "metrics.accuracy > 0.5 and params.model = 'xgb'", "order_by", "metrics.accuracy DESC", "_end", "10"))
	expect(t, r, 200)
	if got, want := names(runs), []string{"srch-c:0.99", "srch-a:0.97", "srch-b:0.93", "srch-a:0.91"}; fmt.Sprint(got) != fmt.Sprint(want) || total != 4 {
		t.Errorf("admin search: %v (total %d), want %v (total 4)", got, total, want)
	}
	// A window of the same order, with the total of all.
	runs, total, _ = search(tp.admin, q("order_by", "metrics.accuracy ASC", "_start", "2", "_end", "4"))
	if got, want := names(runs), []string{"srch-b:0.60", "srch-a:0.91"}; fmt.Sprint(got) != fmt.Sprint(want) || total != 7 {
		t.Errorf("window 2..4 by accuracy: %v (total %d), want %v (total 7)", got, total, want)
	}
	// Alice: her two projects only; carol: srch-b only, in the total too.
	runs, total, _ = search(alice, q("order_by", "metrics.accuracy DESC"))
	if got, want := names(runs), []string{"srch-a:0.97", "srch-b:0.93", "srch-a:0.91", "srch-b:0.60", "srch-a:0.55"}; fmt.Sprint(got) != fmt.Sprint(want) || total != 5 {
		t.Errorf("alice: %v (total %d), want %v (total 5)", got, total, want)
	}
	runs, total, _ = search(carol, q("order_by", "metrics.accuracy DESC"))
	if got, want := names(runs), []string{"srch-b:0.93", "srch-b:0.60"}; fmt.Sprint(got) != fmt.Sprint(want) || total != 2 {
		t.Errorf("carol (viewer of srch-b): %v (total %d), want %v (total 2)", got, total, want)
	}
	// A project carol may not view is as unknown as one that does not exist.
	_, _, hidden := search(carol, q("projects", "srch-a"))
	_, _, missing := search(carol, q("projects", "nope"))
	if hidden.Status != 404 || missing.Status != 404 || strings.ReplaceAll(string(hidden.Body), "srch-a", "nope") != string(missing.Body) {
		t.Errorf("carol naming srch-a: %d %s; naming nope: %d %s", hidden.Status, hidden.Body, missing.Status, missing.Body)
	}
	// Projects by name or id, and experiment names as LIKE patterns.
	b := getTeamProject(t, tp, "srch-b")
	runs, total, _ = search(tp.admin, q("projects", b.ID+",srch-c", "experiment_name", "sh%", "order_by", "metrics.accuracy DESC", "_end", "1"))
	if got := names(runs); fmt.Sprint(got) != "[srch-c:0.99]" || total != 4 {
		t.Errorf("projects=<id of srch-b>,srch-c: %v (total %d), want [srch-c:0.99] (total 4)", got, total)
	}
	// The leaderboards: best accuracy per project, per experiment name.
	runs, total, _ = search(alice, q("group_by", "project", "order_by", "metrics.accuracy DESC"))
	if got := names(runs); fmt.Sprint(got) != "[srch-a:0.97 srch-b:0.93]" || total != 2 || runs[0].Group != "srch-a" {
		t.Errorf("alice's leaderboard by project: %v (total %d, %+v)", got, total, runs)
	}
	runs, total, _ = search(tp.admin, q("group_by", "experiment_name", "order_by", "metrics.accuracy DESC"))
	if got := names(runs); fmt.Sprint(got) != "[srch-c:0.99]" || total != 1 || runs[0].Group != "shared" {
		t.Errorf("leaderboard by experiment name: %v (total %d)", got, total)
	}
	// Bad input.
	_, _, bad := search(alice, q("filter", "metrics.accuracy > 'high'"))
	if bad.Status != 400 || !strings.Contains(bad.Message(), "srch-b") {
		t.Errorf("a filter MLflow refuses: %d %s, want a 400 naming the project whose MLflow refused it", bad.Status, bad.Body)
	}
	runs, total, r = search(alice, q("filter", "metrics.nowhere > 1"))
	if r.Status != 200 || len(runs) != 0 || total != 0 {
		t.Errorf("a key that exists nowhere: %d %s (total %d), want 200 [] (total 0)", r.Status, r.Body, total)
	}
	_, _, bad = search(alice, q("group_by", "project"))
	if bad.Status != 400 || !strings.Contains(bad.Message(), "order_by") {
		t.Errorf("group_by without order_by: %d %s", bad.Status, bad.Body)
	}
	if s := tp.projectStatus(t, "srch-a"); s != "sleeping" {
		t.Errorf("srch-a is %s after the searches, want it still sleeping", s)
	}

	// Every @champion alice may view, with its source run's accuracy.
	r = tp.as(t, alice, "GET", "/search/models?"+q("alias", "@champion", "tag", "task=vision"), nil)
	expect(t, r, 200)
	var models []struct {
		ProjectName string   `json:"project_name"`
		Name        string   `json:"name"`
		Version     string   `json:"version"`
		Aliases     []string `json:"aliases"`
		Served      bool     `json:"served"`
		RunMetrics  []struct {
			Key   string  `json:"key"`
			Value float64 `json:"value"`
		} `json:"run_metrics"`
	}
	r.JSON(t, &models)
	var champs []string
	for _, m := range models {
		acc := -1.0
		for _, x := range m.RunMetrics {
			if x.Key == "accuracy" {
				acc = x.Value
			}
		}
		champs = append(champs, fmt.Sprintf("%s:%s/%s:%v:%.2f:%v", m.ProjectName, m.Name, m.Version, m.Aliases, acc, m.Served))
	}
	if fmt.Sprint(champs) != "[srch-a:clf-srch-a/1:[champion]:0.97:false srch-b:clf-srch-b/1:[champion]:0.93:false]" || r.Header.Get("X-Total-Count") != "2" {
		t.Errorf("alice's champions: %v (total %s)", champs, r.Header.Get("X-Total-Count"))
	}
	r = tp.as(t, carol, "GET", "/search/models?"+q("name", "clf-%"), nil)
	expect(t, r, 200)
	if r.Header.Get("X-Total-Count") != "1" {
		t.Errorf("carol's models: %s (total %s), want srch-b's only", r.Body, r.Header.Get("X-Total-Count"))
	}

	// Compare a run of srch-a (asleep) with one of srch-b.
	ref := func(p string, i int) string { return p + ":" + ids[p][i] }
	r = tp.as(t, alice, "GET", "/compare/runs?"+q("ids", ref("srch-a", 2)+","+ref("srch-b", 1)), nil)
	expect(t, r, 200)
	var cmp struct {
		Keys   []string `json:"keys"`
		Params []struct {
			Key     string `json:"key"`
			Differs bool   `json:"differs"`
			Values  []*struct {
				Value string `json:"value"`
			} `json:"values"`
		} `json:"params"`
		Metrics []struct {
			Key     string `json:"key"`
			Differs bool   `json:"differs"`
		} `json:"metrics"`
		Histories []struct {
			Run    string `json:"run"`
			Key    string `json:"key"`
			Points []struct {
				Step  int64   `json:"step"`
				Value float64 `json:"value"`
			} `json:"points"`
		} `json:"histories"`
	}
	r.JSON(t, &cmp)
	var params []string
	for _, p := range cmp.Params {
		params = append(params, fmt.Sprintf("%s:%v:%s/%s", p.Key, p.Differs, p.Values[0].Value, p.Values[1].Value))
	}
	sort.Strings(params)
	if fmt.Sprint(params) != "[model:true:xgb/lr project:true:srch-a/srch-b]" || len(cmp.Metrics) != 1 || !cmp.Metrics[0].Differs {
		t.Errorf("compare: params %v, metrics %+v", params, cmp.Metrics)
	}
	if len(cmp.Histories) != 2 || len(cmp.Histories[0].Points) != 3 || math.Abs(cmp.Histories[0].Points[2].Value-0.97) > 1e-9 || math.Abs(cmp.Histories[1].Points[0].Value-0.58) > 1e-9 {
		t.Errorf("compare histories: %+v", cmp.Histories)
	}
	// Carol may not see srch-a's run: the answer of a project that does not exist.
	hidden = tp.as(t, carol, "GET", "/compare/runs?"+q("ids", ref("srch-a", 0)), nil)
	missing = tp.as(t, carol, "GET", "/compare/runs?"+q("ids", "nope:"+ids["srch-a"][0]), nil)
	if hidden.Status != 404 || strings.ReplaceAll(string(hidden.Body), "srch-a", "nope") != string(missing.Body) {
		t.Errorf("carol comparing srch-a's run: %d %s; a missing project: %d %s", hidden.Status, hidden.Body, missing.Status, missing.Body)
	}
	expect(t, tp.as(t, alice, "GET", "/compare/runs?ids=just-a-run-id", nil), 400)
	if s := tp.projectStatus(t, "srch-a"); s != "sleeping" {
		t.Errorf("srch-a is %s after the comparison, want it still sleeping", s)
	}
}

func getTeamProject(t *testing.T, tp *teamPanel, ref string) project {
	t.Helper()
	r := tp.as(t, tp.admin, "GET", "/projects/"+ref, nil)
	expect(t, r, 200)
	var p project
	r.JSON(t, &p)
	return p
}
