package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTrackingExperimentLifecycle: experiments made through mlpanel (JSON
// and form bodies) report the times mlpanel recorded; soft delete hides,
// restore brings back.
func TestTrackingExperimentLifecycle(t *testing.T) {
	f := trkSetup(t)
	q := trkQ("project_id", f.p.ID)

	before := time.Now().UnixMilli()
	r := call(t, http.MethodPost, "/experiments?project_id="+f.p.Name,
		map[string]any{"name": "trk-made", "description": "made by the e2e test", "tags": map[string]string{"team": "e2e"}})
	expect(t, r, http.StatusCreated)
	var e trkExperiment
	r.JSON(t, &e)
	after := time.Now().UnixMilli()
	if e.Name != "trk-made" || e.Description != "made by the e2e test" || e.ProjectID != f.p.ID || e.RunCount != 0 ||
		!e.CreatedThroughMlpanel || e.Tags["team"] != "e2e" || e.Tags["mlflow.note.content"] != "made by the e2e test" {
		t.Fatalf("created %+v", e)
	}
	recorded, _ := strconv.ParseInt(e.Tags["mlpanel.created_at"], 10, 64)
	if e.CreationTime != recorded || recorded < before || recorded > after || e.LastUpdateTime < e.CreationTime {
		t.Fatalf("creation_time %d, tag %d, last update %d: want the recorded time within [%d, %d]", e.CreationTime, recorded, e.LastUpdateTime, before, after)
	}

	// A run logged into it later does not move the times mlpanel recorded.
	var created struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	mlflowAPI(t, f.p, http.MethodPost, "runs/create", map[string]any{"experiment_id": e.ID, "start_time": 1500000000000}).JSON(t, &created)
	var got trkExperiment
	trkGet(t, "/experiments/"+e.ID, q, http.StatusOK).JSON(t, &got)
	if got.CreationTime != e.CreationTime || got.RunCount != 1 {
		t.Fatalf("after a run: %+v, want creation_time %d and one run", got, e.CreationTime)
	}

	// A form body, as the original's clients sent, with project_id in it.
	r = call(t, http.MethodPost, "/experiments", url.Values{"project_id": {f.p.ID}, "name": {"trk-form"}, "description": {"from a form"}, "user_id": {"ann"}}.Encode(),
		"application/x-www-form-urlencoded")
	expect(t, r, http.StatusCreated)
	var form trkExperiment
	r.JSON(t, &form)
	if form.Name != "trk-form" || form.Description != "from a form" || form.UserID != "ann" {
		t.Fatalf("form-made %+v", form)
	}

	// MLflow's experiment filter passes through.
	byFilter, total := trkList[trkExperiment](t, "/experiments", trkQ("project_id", f.p.ID, "filter", "name LIKE 'trk-f%'"))
	if total != 1 || byFilter[0].ID != form.ID {
		t.Fatalf("filter name LIKE 'trk-f%%': %s", trkJSON(byFilter))
	}
	trkExpectError(t, call(t, http.MethodPost, "/experiments?project_id="+f.p.ID, map[string]string{"name": "trk-made"}), http.StatusConflict, "already exists")
	trkExpectError(t, call(t, http.MethodPost, "/experiments?project_id="+f.p.ID, map[string]string{"description": "no name"}), http.StatusBadRequest, "name is required")
	trkExpectError(t, call(t, http.MethodPost, "/experiments?project_id="+f.p.ID, map[string]any{"name": 5}), http.StatusBadRequest, "malformed")

	// Soft delete: hidden from the list, 404 on get, listed as deleted.
	r = call(t, http.MethodDelete, "/experiments/"+e.ID+"?project_id="+f.p.ID, nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &got)
	if got.LifecycleStage != "deleted" || got.ID != e.ID {
		t.Fatalf("delete answered %+v", got)
	}
	exps, _ := trkList[trkExperiment](t, "/experiments", q)
	if _, ok := trkFind(exps, func(x trkExperiment) bool { return x.ID == e.ID }); ok {
		t.Fatalf("deleted experiment still listed: %s", trkJSON(exps))
	}
	trkExpectError(t, trkGet(t, "/experiments/"+e.ID, q, http.StatusNotFound), http.StatusNotFound, "restore it with PUT /experiments/"+e.ID+"/restore")
	trkExpectError(t, call(t, http.MethodDelete, "/experiments/"+e.ID+"?project_id="+f.p.ID, nil), http.StatusNotFound, "deleted")
	// Its runs are gone with it.
	trkExpectError(t, trkGet(t, "/runs", trkQ("project_id", f.p.ID, "experiment_id", e.ID), http.StatusNotFound), http.StatusNotFound, "deleted")
	deleted, total := trkList[trkExperiment](t, "/experiments", trkQ("project_id", f.p.ID, "view", "deleted"))
	// Other tests of the shared fixture may have deleted experiments too:
	// this one must be there, and nothing that is not deleted.
	_, listed := trkFind(deleted, func(x trkExperiment) bool { return x.ID == e.ID })
	for _, x := range deleted {
		listed = listed && x.LifecycleStage == "deleted"
	}
	if !listed || total != len(deleted) {
		t.Fatalf("view=deleted lists %s (total %d)", trkJSON(deleted), total)
	}

	r = call(t, http.MethodPut, "/experiments/"+e.ID+"/restore?project_id="+f.p.ID, nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &got)
	if got.LifecycleStage != "active" || got.CreationTime != e.CreationTime {
		t.Fatalf("restore answered %+v", got)
	}
	trkGet(t, "/experiments/"+e.ID, q, http.StatusOK)
	trkExpectError(t, call(t, http.MethodPut, "/experiments/"+e.ID+"/restore?project_id="+f.p.ID, nil), http.StatusConflict, "not deleted")
}

// TestTrackingTimeRule is the seed's rule for experiments made outside
// mlpanel: creation = start of the first run, last update = end of the
// last run, a running run counting with its start time; without runs,
// MLflow's own times.
func TestTrackingTimeRule(t *testing.T) {
	f := trkSetup(t)
	q := trkQ("project_id", f.p.ID)

	var timed trkExperiment
	trkGet(t, "/experiments/"+f.timedExp, q, http.StatusOK).JSON(t, &timed)
	if timed.CreatedThroughMlpanel || timed.RunCount != 3 || timed.CreationTime != f.firstStart || timed.LastUpdateTime != f.lastEnd {
		t.Fatalf("timed experiment %+v: want 3 runs, %d..%d", timed, f.firstStart, f.lastEnd)
	}

	var empty trkExperiment
	trkGet(t, "/experiments/"+f.emptyExp, q, http.StatusOK).JSON(t, &empty)
	var mlf struct {
		Experiment struct {
			CreationTime   int64 `json:"creation_time"`
			LastUpdateTime int64 `json:"last_update_time"`
		} `json:"experiment"`
	}
	mlflowAPI(t, f.p, http.MethodGet, "experiments/get?experiment_id="+f.emptyExp, nil).JSON(t, &mlf)
	if empty.RunCount != 0 || empty.CreationTime != mlf.Experiment.CreationTime || empty.LastUpdateTime != mlf.Experiment.LastUpdateTime {
		t.Fatalf("empty experiment %+v: want MLflow's times %+v", empty, mlf.Experiment)
	}

	// A run still running whose start is the latest moment counts with it.
	var created struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	late := f.lastEnd + 60_000
	r := mlflowAPI(t, f.p, http.MethodPost, "runs/create", map[string]any{"experiment_id": f.timedExp, "start_time": late})
	expect(t, r, http.StatusOK)
	r.JSON(t, &created)
	defer mlflowAPI(t, f.p, http.MethodPost, "runs/delete", map[string]string{"run_id": created.Run.Info.RunID})
	trkGet(t, "/experiments/"+f.timedExp, q, http.StatusOK).JSON(t, &timed)
	if timed.RunCount != 4 || timed.CreationTime != f.firstStart || timed.LastUpdateTime != late {
		t.Fatalf("with a late running run: %+v, want %d..%d", timed, f.firstStart, late)
	}

	// Lists apply the same rule and sort by it.
	exps, _ := trkList[trkExperiment](t, "/experiments", trkQ("project_id", f.p.ID, "_sort", "creation_time", "_order", "ASC"))
	listed := trkMustFind(t, exps, "timed experiment", func(e trkExperiment) bool { return e.ID == f.timedExp })
	if listed.CreationTime != f.firstStart || listed.LastUpdateTime != late {
		t.Fatalf("listed %+v", listed)
	}
	for i := 1; i < len(exps); i++ {
		if exps[i-1].CreationTime > exps[i].CreationTime {
			t.Fatalf("not sorted by creation_time: %s", trkJSON(exps))
		}
	}
}

// TestTrackingRunsPaging: more runs than one MLflow page (the service is
// configured with pages of trkPageSize), true totals, windows, MLflow's
// filter and order_by passed through, _sort, soft delete and restore.
func TestTrackingRunsPaging(t *testing.T) {
	f := trkSetup(t)
	var exp struct {
		ID string `json:"experiment_id"`
	}
	r := mlflowAPI(t, f.p, http.MethodPost, "experiments/create", map[string]string{"name": "trk-paging"})
	expect(t, r, http.StatusOK)
	r.JSON(t, &exp)
	const n = 3*trkPageSize + 2
	ids := make([]string, n)
	for i := range n {
		var created struct {
			Run struct {
				Info struct {
					RunID string `json:"run_id"`
				} `json:"info"`
			} `json:"run"`
		}
		r := mlflowAPI(t, f.p, http.MethodPost, "runs/create", map[string]any{
			"experiment_id": exp.ID, "run_name": fmt.Sprintf("r%02d", i), "start_time": 1700000000000 + int64(i)*1000})
		expect(t, r, http.StatusOK)
		r.JSON(t, &created)
		ids[i] = created.Run.Info.RunID
		expect(t, mlflowAPI(t, f.p, http.MethodPost, "runs/log-batch", map[string]any{
			"run_id":  ids[i],
			"metrics": []map[string]any{{"key": "m", "value": i, "timestamp": 1700000000000, "step": 0}},
			"params":  []map[string]string{{"key": "parity", "value": []string{"even", "odd"}[i%2]}},
		}), http.StatusOK)
	}
	q := func(kv ...string) url.Values {
		return trkQ(append([]string{"project_id", f.p.ID, "experiment_id", exp.ID}, kv...)...)
	}

	all, total := trkList[trkRun](t, "/runs", q())
	if total != n || len(all) != n {
		t.Fatalf("total %d, %d items; want %d", total, len(all), n)
	}
	// MLflow's default order: newest start first.
	if all[0].ID != ids[n-1] || all[n-1].ID != ids[0] {
		t.Fatalf("order %s", trkJSON(all))
	}
	page, total := trkList[trkRun](t, "/runs", q("_start", "4", "_end", "11"))
	if total != n || len(page) != 7 || page[0].ID != all[4].ID || page[6].ID != all[10].ID {
		t.Fatalf("window [4,11): total %d, %d items", total, len(page))
	}
	page, total = trkList[trkRun](t, "/runs", q("_start", "15", "_end", "40"))
	if total != n || len(page) != n-15 {
		t.Fatalf("last window: total %d, %d items", total, len(page))
	}
	page, total = trkList[trkRun](t, "/runs", q("_start", "100"))
	if total != n || len(page) != 0 {
		t.Fatalf("window past the end: total %d, %d items", total, len(page))
	}

	filtered, total := trkList[trkRun](t, "/runs", q("filter", "metrics.m >= 10 and params.parity = 'even'", "order_by", "metrics.m DESC"))
	if total != 4 || len(filtered) != 4 || filtered[0].ID != ids[16] || filtered[3].ID != ids[10] {
		t.Fatalf("filter: total %d, %s", total, trkJSON(filtered))
	}
	sorted, _ := trkList[trkRun](t, "/runs", q("_sort", "metrics.m", "_order", "ASC", "_end", "3"))
	if len(sorted) != 3 || sorted[0].ID != ids[0] || sorted[2].ID != ids[2] {
		t.Fatalf("_sort=metrics.m: %s", trkJSON(sorted))
	}
	byName, _ := trkList[trkRun](t, "/runs", q("_sort", "run_name", "_order", "DESC", "_end", "1"))
	if byName[0].Info.RunName != fmt.Sprintf("r%02d", n-1) {
		t.Fatalf("_sort=run_name DESC starts with %q", byName[0].Info.RunName)
	}
	trkExpectError(t, trkGet(t, "/runs", q("filter", "metrics.m >> 3"), http.StatusBadRequest), http.StatusBadRequest, "Invalid comparator")
	trkExpectError(t, trkGet(t, "/runs", q("order_by", "nonsense"), http.StatusBadRequest), http.StatusBadRequest, "nonsense")
	trkExpectError(t, trkGet(t, "/runs", q("_sort", "colour"), http.StatusBadRequest), http.StatusBadRequest, "cannot sort runs")

	// Without experiment_id: every active experiment's runs.
	everything, total := trkList[trkRun](t, "/runs", trkQ("project_id", f.p.ID))
	if total < n+1 || len(everything) != total {
		t.Fatalf("all experiments: total %d, %d items; want at least %d", total, len(everything), n+1)
	}
	trkMustFind(t, everything, "the example run", func(r trkRun) bool { return r.ID == f.exampleRun })

	// Soft delete and restore.
	victim := ids[3]
	r = call(t, http.MethodDelete, "/runs/"+victim+"?project_id="+f.p.ID, nil)
	expect(t, r, http.StatusOK)
	var got trkRun
	r.JSON(t, &got)
	if got.Info.LifecycleStage != "deleted" {
		t.Fatalf("delete answered %s", trkJSON(got))
	}
	trkExpectError(t, trkGet(t, "/runs/"+victim, trkQ("project_id", f.p.ID), http.StatusNotFound), http.StatusNotFound, "restore it with PUT /runs/"+victim+"/restore")
	if _, total := trkList[trkRun](t, "/runs", q()); total != n-1 {
		t.Fatalf("after delete: total %d, want %d", total, n-1)
	}
	if deleted, _ := trkList[trkRun](t, "/runs", q("view", "deleted")); len(deleted) != 1 || deleted[0].ID != victim {
		t.Fatalf("view=deleted: %s", trkJSON(deleted))
	}
	trkExpectError(t, trkGet(t, "/runs/"+victim+"/metrics/m", trkQ("project_id", f.p.ID), http.StatusNotFound), http.StatusNotFound, "deleted")
	expect(t, call(t, http.MethodPut, "/runs/"+victim+"/restore?project_id="+f.p.ID, nil), http.StatusOK)
	trkGet(t, "/runs/"+victim, trkQ("project_id", f.p.ID), http.StatusOK)
	if _, total := trkList[trkRun](t, "/runs", q()); total != n {
		t.Fatalf("after restore: total %d, want %d", total, n)
	}
	trkExpectError(t, call(t, http.MethodPut, "/runs/"+victim+"/restore?project_id="+f.p.ID, nil), http.StatusConflict, "not deleted")

	// A metric key with a slash, and a value JSON cannot hold as a number.
	expect(t, mlflowAPI(t, f.p, http.MethodPost, "runs/log-batch", map[string]any{
		"run_id": ids[0],
		"metrics": []map[string]any{
			{"key": "train/loss", "value": 0.5, "timestamp": 1700000000001, "step": 0},
			{"key": "train/loss", "value": "NaN", "timestamp": 1700000000002, "step": 1},
			{"key": "train/loss", "value": 0.25, "timestamp": 1700000000003, "step": 2},
		},
	}), http.StatusOK)
	r = trkGet(t, "/runs/"+ids[0]+"/metrics/train/loss", trkQ("project_id", f.p.ID), http.StatusOK)
	var hist []map[string]any
	r.JSON(t, &hist)
	if len(hist) != 3 || hist[0]["value"] != 0.5 || hist[1]["value"] != "NaN" || hist[2]["step"] != float64(2) || hist[0]["key"] != "train/loss" {
		t.Fatalf("train/loss history %s", r.Body)
	}
	trkGet(t, "/runs/"+ids[0], trkQ("project_id", f.p.ID), http.StatusOK) // the NaN latest value encodes too

	// An artifact whose name needs escaping, uploaded through the served store.
	run := trkMLflowRun(t, f.p, ids[1])
	put, _ := http.NewRequest(http.MethodPut, f.p.MlflowURI+"/api/2.0/mlflow-artifacts/artifacts/"+
		strings.TrimPrefix(run.Info.ArtifactURI, "mlflow-artifacts:/")+"/notes/a%20b%26c.txt", strings.NewReader("hello, space"))
	resp, err := http.DefaultClient.Do(put)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("uploading an artifact: %v %v", resp, err)
	}
	resp.Body.Close()
	notes, _ := trkList[trkArtifact](t, "/artifacts", trkQ("project_id", f.p.ID, "run_id", ids[1], "path", "notes"))
	if len(notes) != 1 || notes[0].Path != "notes/a b&c.txt" || notes[0].Size != int64(len("hello, space")) {
		t.Fatalf("notes/ holds %s", trkJSON(notes))
	}
	r = trkGet(t, "/artifacts/content", trkQ("project_id", f.p.ID, "run_id", ids[1], "path", "notes/a b&c.txt"), http.StatusOK)
	if string(r.Body) != "hello, space" || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" ||
		r.Header.Get("Content-Disposition") != `inline; filename="a b&c.txt"` {
		t.Fatalf("download: %q %v", r.Body, r.Header)
	}
	// A deleted run's artifacts are gone with it.
	expect(t, call(t, http.MethodDelete, "/runs/"+ids[1]+"?project_id="+f.p.ID, nil), http.StatusOK)
	trkExpectError(t, trkGet(t, "/artifacts/content", trkQ("project_id", f.p.ID, "run_id", ids[1], "path", "notes/a b&c.txt"), http.StatusNotFound), http.StatusNotFound, "deleted")
	trkExpectError(t, trkGet(t, "/artifacts", trkQ("project_id", f.p.ID, "run_id", ids[1]), http.StatusNotFound), http.StatusNotFound, "deleted")
	expect(t, call(t, http.MethodPut, "/runs/"+ids[1]+"/restore?project_id="+f.p.ID, nil), http.StatusOK)

	// Experiments list with more experiments than a page, windowed.
	exps, total := trkList[trkExperiment](t, "/experiments", trkQ("project_id", f.p.ID))
	window, total2 := trkList[trkExperiment](t, "/experiments", trkQ("project_id", f.p.ID, "_start", "1", "_end", "3"))
	if total != total2 || len(window) != min(2, max(total-1, 0)) || (len(window) > 0 && window[0].ID != exps[1].ID) {
		t.Fatalf("experiments window: %d of %d, %s", len(window), total, trkJSON(window))
	}
	paged := trkMustFind(t, exps, "trk-paging", func(e trkExperiment) bool { return e.ID == exp.ID })
	if paged.RunCount != n || paged.CreationTime != 1700000000000 {
		t.Fatalf("trk-paging experiment %+v: want %d runs from 1700000000000", paged, n)
	}
}
