package web

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// logSweep logs runs into two projects with MLflow's own client in one
// Python process (one import of mlflow keeps it fast): each run has a
// param lr, a param model that is the same everywhere, and an acc history
// of three steps whose last value is the one in its name's table below.
func logSweep(t *testing.T, token string) {
	t.Helper()
	script := `
import sys
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
base = sys.argv[1]
sweep = {
    "srch-a": [("a-fast", "0.1", 0.91), ("a-slow", "0.01", 0.75)],
    "srch-b": [("b-best", "0.2", 0.95), ("b-mid", "0.05", 0.85), ("b-low", "0.001", 0.5)],
}
for project, runs in sweep.items():
    c = MlflowClient(tracking_uri=base + "/projects/" + project + "/mlflow")
    exp = c.create_experiment("sweep")
    for name, lr, acc in runs:
        r = c.create_run(exp, run_name=name)
        hist = [Metric("acc", acc - 0.2 + 0.1 * i, 1700000000000 + i, i) for i in range(3)]
        c.log_batch(r.info.run_id, metrics=hist, params=[Param("lr", lr), Param("model", "mlp")])
        c.set_terminated(r.info.run_id)
`
	cmd := exec.Command(filepath.Join(repoRoot, ".venv", "bin", "python"), "-c", script, panel.URL)
	cmd.Env = append(os.Environ(), "MLFLOW_TRACKING_TOKEN="+token, "GIT_PYTHON_REFRESH=quiet")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("logging the sweep: %v\n%s", err, out)
	}
}

// TestSearchAcrossProjectsInABrowser: a user searches the runs of all
// their projects from the panel, sees one table in the global order with
// each run's project, compares runs of two projects side by side with
// the differences marked and their histories drawn, and a filter MLflow
// refuses shows MLflow's message on the page.
func TestSearchAcrossProjectsInABrowser(t *testing.T) {
	sally := newUser(t, "sally", false)
	for _, name := range []string{"srch-a", "srch-b"} {
		p := createProject(t, sally, name)
		t.Cleanup(func() { as(t, adminToken, "DELETE", "/projects/"+p.ID, nil) })
		expect(t, as(t, sally, "PUT", "/projects/"+p.ID+"/run", nil), 200)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(300 * time.Millisecond) {
		var a, b project
		as(t, sally, "GET", "/projects/srch-a", nil).JSON(t, &a)
		as(t, sally, "GET", "/projects/srch-b", nil).JSON(t, &b)
		if a.Status == "running" && b.Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("projects not running after 2m: %s, %s", a.Status, b.Status)
		}
	}
	logSweep(t, sally)

	b := newBrowser(t, 1280, 800)
	b.signIn(sally, "sally")
	b.run("searching across projects", 30*time.Second,
		hash("#/search"),
		chromedp.WaitVisible(`[data-testid=search-filter]`, chromedp.ByQuery),
		chromedp.SendKeys(`[data-testid=search-filter]`, "metrics.acc > 0.6", chromedp.ByQuery),
		chromedp.SendKeys(`[data-testid=search-order_by]`, "metrics.acc DESC", chromedp.ByQuery),
		chromedp.Click(`[data-testid=search-go]`, chromedp.ByQuery),
		waitJS(`document.querySelectorAll('[data-testid=search-results] tbody tr').length === 4`))
	var rows []struct{ Project, Run, Experiment, Acc string }
	b.run("reading the results", 10*time.Second, chromedp.Evaluate(`[...document.querySelectorAll('[data-testid=search-results] tbody tr')].map(r => ({
		Project: r.querySelector('[data-testid=project]').textContent.trim(),
		Run: r.querySelector('[data-testid=run]').textContent.trim(),
		Experiment: r.querySelector('[data-testid=experiment]').textContent.trim(),
		Acc: r.querySelector('[data-testid=order-value]').textContent.trim(),
	}))`, &rows))
	// Each run shows its experiment by name: its id (2 in both projects
	// here) says nothing across projects.
	want := []struct{ Project, Run, Experiment, Acc string }{
		{"srch-b", "b-best", "sweep", "0.95"}, {"srch-a", "a-fast", "sweep", "0.91"}, {"srch-b", "b-mid", "sweep", "0.85"}, {"srch-a", "a-slow", "sweep", "0.75"},
	}
	if len(rows) != len(want) {
		t.Fatalf("results %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d is %+v, want %+v (all: %+v)", i+1, rows[i], want[i], rows)
		}
	}
	if got := b.text(`[data-testid=search-total]`); got != "4 runs" {
		t.Errorf("total %q, want 4 runs", got)
	}
	// The query is in the address, so the search can be shared as a link.
	var loc string
	b.run("reading the address", 5*time.Second, chromedp.Evaluate(`location.hash`, &loc))
	if u, err := url.Parse(strings.TrimPrefix(loc, "#")); err != nil || u.Query().Get("filter") != "metrics.acc > 0.6" || u.Query().Get("order_by") != "metrics.acc DESC" {
		t.Errorf("address %q does not carry the query", loc)
	}
	b.screenshot("search")

	// Compare the best run of each project.
	b.run("comparing two runs", 30*time.Second,
		chromedp.Click(`[data-testid=search-results] tbody tr:nth-child(1) input[type=checkbox]`, chromedp.ByQuery),
		chromedp.Click(`[data-testid=search-results] tbody tr:nth-child(2) input[type=checkbox]`, chromedp.ByQuery),
		waitJS(`!document.querySelector('[data-testid=search-compare]').disabled`),
		chromedp.Click(`[data-testid=search-compare]`, chromedp.ByQuery),
		waitJS(`document.querySelectorAll('[data-testid=chart] canvas').length > 0`))
	var cmp struct {
		Head    []string
		Params  map[string][]string
		Differs map[string]bool
		Acc     []string
		Canvas  struct{ W, H int }
	}
	b.run("reading the comparison", 10*time.Second, chromedp.Evaluate(`(() => {
		const cells = (tr) => [...tr.querySelectorAll('td')].map(td => td.textContent.trim());
		const params = {}, differs = {};
		for (const tr of document.querySelectorAll('[data-testid=compare-params] tbody tr')) {
			const k = tr.dataset.key; params[k] = cells(tr); differs['param ' + k] = tr.classList.contains('differs');
		}
		const acc = document.querySelector('[data-testid=compare-metrics] tbody tr[data-key=acc]');
		differs['metric acc'] = acc.classList.contains('differs');
		const c = document.querySelector('[data-testid=chart] canvas').getBoundingClientRect();
		return {
			Head: [...document.querySelectorAll('[data-testid=compare-params] thead th')].map(th => th.textContent.trim()),
			Params: params, Differs: differs, Acc: cells(acc),
			Canvas: {W: Math.round(c.width), H: Math.round(c.height)},
		};
	})()`, &cmp))
	if strings.Join(cmp.Head, "|") != "Key|srch-b / b-best|srch-a / a-fast" {
		t.Errorf("compare header %q, want the key and each run named with its project", cmp.Head)
	}
	if got := strings.Join(cmp.Params["lr"], "|"); got != "0.2|0.1" || !cmp.Differs["param lr"] {
		t.Errorf("param lr %q (differs %v), want 0.2|0.1 marked as differing", got, cmp.Differs["param lr"])
	}
	if got := strings.Join(cmp.Params["model"], "|"); got != "mlp|mlp" || cmp.Differs["param model"] {
		t.Errorf("param model %q (differs %v), want mlp|mlp not marked", got, cmp.Differs["param model"])
	}
	if got := strings.Join(cmp.Acc, "|"); got != "0.95|0.91" || !cmp.Differs["metric acc"] {
		t.Errorf("metric acc %q (differs %v), want 0.95|0.91 marked as differing", got, cmp.Differs["metric acc"])
	}
	if cmp.Canvas.W < 200 || cmp.Canvas.H < 100 {
		t.Errorf("the history chart's canvas is %dx%d", cmp.Canvas.W, cmp.Canvas.H)
	}
	var legends int
	b.run("reading the chart legend", 10*time.Second, chromedp.Evaluate(
		`document.querySelector('[data-testid=chart]').querySelectorAll('.u-legend .u-series').length`, &legends))
	if legends != 3 { // the step column and two runs
		t.Errorf("acc chart has %d legend entries, want step + 2 runs", legends)
	}
	// Steps are integers: the step axis of a 3-step history is labelled
	// at whole steps, not 0, 0.2, 0.4, ...
	var ticks string
	b.run("reading the step axis", 10*time.Second, waitJS(`!!document.querySelector('[data-testid=chart] [data-xticks]')`),
		chromedp.Evaluate(`document.querySelector('[data-testid=chart] [data-xticks]').dataset.xticks`, &ticks))
	if len(strings.Fields(ticks)) < 2 {
		t.Errorf("step axis labels %q, want the steps 0..2", ticks)
	}
	for _, tick := range strings.Fields(ticks) {
		if _, err := strconv.Atoi(strings.ReplaceAll(tick, ",", "")); err != nil {
			t.Errorf("step axis labels %q: %q is not a whole step", ticks, tick)
		}
	}
	b.run("scrolling to the top", 5*time.Second, chromedp.Evaluate(`window.scrollTo(0,0)`, nil))
	b.screenshot("compare")

	// A filter MLflow refuses: the API's 400 message, inline on the page.
	bad := "metrics.acc >>> 1"
	r := as(t, sally, "GET", "/search/runs?filter="+url.QueryEscape(bad), nil)
	expect(t, r, 400)
	var msg struct{ Message string }
	r.JSON(t, &msg)
	if msg.Message == "" {
		t.Fatalf("400 without a message: %s", r.Body)
	}
	b.run("searching with a bad filter", 30*time.Second,
		chromedp.Click(`//a[contains(., "Back to the search")]`, chromedp.BySearch),
		chromedp.WaitVisible(`[data-testid=search-filter]`, chromedp.ByQuery),
		fill(`[data-testid=search-filter]`, bad),
		chromedp.Click(`[data-testid=search-go]`, chromedp.ByQuery),
		waitJS(`(document.querySelector('[role=alert]')||{}).textContent?.includes(`+jsString(msg.Message)+`)`))
	if n := b.count(`[data-testid=search-results]`); n != 0 {
		t.Errorf("a refused filter still shows %d result tables", n)
	}
}
