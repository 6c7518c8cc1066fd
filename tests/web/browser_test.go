package web

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browser is one headless Chromium tab that records every console error
// and uncaught exception; the test fails on any of them.
type browser struct {
	t      *testing.T
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

// chromePath finds Debian's chromium: CHROME_PATH, else PATH.
func chromePath(t *testing.T) string {
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium: install Debian's chromium (apt-get install -y chromium; .ci/run does) or set CHROME_PATH")
	return ""
}

func newBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromePath(t)),
		chromedp.WindowSize(width, height),
		chromedp.NoSandbox, // runs as root in CI containers
		chromedp.Flag("disable-gpu", true),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp logs DOM events its protocol version does not know (newer
	// Chromium's top-layer events for <dialog>); they are not page errors.
	quiet := func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "unhandled node event") {
			t.Log(msg)
		}
	}
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithErrorf(quiet))
	t.Cleanup(func() { cancelC(); cancelA() })
	b := &browser{t: t, ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.addError("console.error: " + strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.addError("uncaught: " + msg)
		}
	})
	// The window cannot be narrower than ~500 px headless; the viewport can.
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.errors) > 0 {
			t.Errorf("JavaScript errors in the console:\n%s", strings.Join(b.errors, "\n"))
		}
	})
	return b
}

func (b *browser) addError(s string) {
	b.mu.Lock()
	b.errors = append(b.errors, s)
	b.mu.Unlock()
}

// run runs actions with a deadline and fails the test with what it was doing.
func (b *browser) run(what string, timeout time.Duration, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var shot []byte
		_ = chromedp.Run(b.ctx, chromedp.FullScreenshot(&shot, 100))
		if len(shot) > 0 {
			p := filepath.Join(os.TempDir(), "mlpanel-web-failure.png")
			_ = os.WriteFile(p, shot, 0o644)
			b.t.Logf("screenshot of the failure: %s", p)
		}
		b.t.Fatalf("%s: %v", what, err)
	}
}

// waitJS polls a JavaScript expression until it is true.
func waitJS(expr string) chromedp.Action {
	return chromedp.Poll(expr, nil, chromedp.WithPollingInterval(200*time.Millisecond))
}

// hash moves the single-page panel to a route, as a click on a link would.
func hash(parts ...string) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`location.hash = %q`, strings.Join(parts, "")), nil)
}

// fill sets an input's or select's value as typing or picking would: the
// page hears an input and a change event.
func fill(sel, value string) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`(() => {
		const e = document.querySelector(%q);
		e.value = %q;
		e.dispatchEvent(new Event('input', {bubbles: true}));
		e.dispatchEvent(new Event('change', {bubbles: true}));
	})()`, sel, value), nil)
}

// text is the trimmed text of the first element matching a CSS selector.
func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.run("reading "+sel, 10*time.Second, chromedp.Text(sel, &s, chromedp.ByQuery))
	return strings.TrimSpace(s)
}

func (b *browser) count(sel string) int {
	b.t.Helper()
	var n int
	b.run("counting "+sel, 10*time.Second, chromedp.Evaluate(fmt.Sprintf(`document.querySelectorAll(%q).length`, sel), &n))
	return n
}

// screenshot saves the page to docs/screenshots/<name>.png.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	var png []byte
	// Toasts are transient and would cover the page's corner.
	b.run("screenshot "+name, 20*time.Second, chromedp.Sleep(300*time.Millisecond),
		chromedp.Evaluate(`document.querySelector('.toasts')?.style.setProperty('visibility', 'hidden')`, nil),
		chromedp.FullScreenshot(&png, 100),
		chromedp.Evaluate(`document.querySelector('.toasts')?.style.removeProperty('visibility')`, nil))
	dir := filepath.Join(repoRoot, "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) signIn(token, name string) {
	b.t.Helper()
	b.run("signing in as "+name, 30*time.Second,
		chromedp.Navigate(panel.URL+"/"),
		chromedp.WaitVisible(`[data-testid=token]`, chromedp.ByQuery),
		chromedp.SendKeys(`[data-testid=token]`, token, chromedp.ByQuery),
		chromedp.Click(`[data-testid=signin]`, chromedp.ByQuery),
		waitJS(fmt.Sprintf(`(document.querySelector('[data-testid=me]')||{}).textContent === %q`, name)),
		waitJS(`(document.querySelector('[data-testid=live]')||{}).textContent === 'live'`),
	)
}

// train runs examples/train.py against a project through the gateway
// with a user's token, as a user would from a shell.
func train(t *testing.T, project, token string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, ".venv", "bin", "python"), append([]string{filepath.Join(repoRoot, "examples", "train.py")}, args...)...)
	cmd.Env = append(os.Environ(),
		"MLFLOW_TRACKING_URI="+panel.URL+"/projects/"+project+"/mlflow",
		"MLFLOW_TRACKING_TOKEN="+token,
		"GIT_PYTHON_REFRESH=quiet", "MLFLOW_ENABLE_ASYNC_LOGGING=false")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("train.py: %v\n%s\n%s", err, out.String(), errb.String())
	}
	return out.String()
}

// TestPanelInABrowser walks a user through the panel in Chromium: sign
// in, create and run a project and see it turn running without a reload,
// train, chart, artifacts, registry, deploy, predict, stop, delete; and a
// viewer sees no button that would answer 403.
func TestPanelInABrowser(t *testing.T) {
	alice := newUser(t, "alice", false)
	victor := newUser(t, "victor", false)
	b := newBrowser(t, 1280, 900)
	b.signIn(alice, "alice")

	// Create and run; the status must change on screen with no reload:
	// a marker set on window would not survive one.
	row := `tr[data-project="webproj"]`
	b.run("creating a project", 30*time.Second,
		chromedp.SendKeys(`[data-testid=new-project-name]`, "webproj", chromedp.ByQuery),
		chromedp.Click(`[data-testid=create-project]`, chromedp.ByQuery),
		chromedp.WaitVisible(row, chromedp.ByQuery),
		chromedp.Evaluate(`window.__noReload = 1`, nil),
		chromedp.Click(row+` [data-testid=run]`, chromedp.ByQuery),
	)
	b.run("waiting for webproj to turn running without reload", 3*time.Minute,
		waitJS(`document.querySelector('tr[data-project="webproj"] [data-testid=status]')?.textContent === 'running'`))
	var marker int
	b.run("checking no reload happened", 5*time.Second, chromedp.Evaluate(`window.__noReload || 0`, &marker))
	if marker != 1 {
		t.Fatal("the page reloaded: the status came from a reload, not from /events")
	}
	expect(t, as(t, alice, "PUT", "/projects/webproj/members/victor", map[string]string{"role": "viewer"}), 200)
	b.run("opening details", 20*time.Second,
		chromedp.Click(row+` [data-testid=details]`, chromedp.ByQuery),
		waitJS(`(document.querySelector('[data-testid=log]')||{}).textContent?.length > 20`))
	if got := b.text(`.copy pre`); !strings.Contains(got, "MLFLOW_TRACKING_URI="+panel.URL+"/projects/webproj/mlflow") {
		t.Fatalf("tracking URI block: %q", got)
	}
	// The row says where to point MLflow (the gateway: with auth on the
	// server itself listens on a Unix socket), which MLflow serves it,
	// and what it costs now.
	var desc struct {
		MlflowURI     string `json:"mlflowUri"`
		MlflowVersion string `json:"mlflowVersion"`
	}
	as(t, alice, "GET", "/projects/webproj", nil).JSON(t, &desc)
	b.run("reading the row's version and memory", 30*time.Second,
		waitJS(`document.querySelector('tr[data-project="webproj"] [data-testid=mlflow-version]')?.textContent === `+jsString(desc.MlflowVersion)),
		waitJS(`/[0-9.]+ (KB|MB|GB)/.test(document.querySelector('tr[data-project="webproj"] [data-testid=memory]')?.textContent)`),
		waitJS(`document.querySelector('tr[data-project="webproj"] [data-testid=runs]')?.textContent === '0'`))
	if got := b.text(row + ` [data-testid=address]`); desc.MlflowVersion == "" || got != desc.MlflowURI || !strings.HasPrefix(got, panel.URL) {
		t.Fatalf("address column %q, want the project's mlflowUri %q through the gateway (version %q)", got, desc.MlflowURI, desc.MlflowVersion)
	}
	b.screenshot("projects")

	// Two training runs to overlay.
	train(t, "webproj", alice, "--experiment", "iris", "--model-name", "iris-web", "--epochs", "40", "--run-name", "lr-0.05")
	out := train(t, "webproj", alice, "--experiment", "iris", "--model-name", "iris-web", "--epochs", "40", "--learning-rate", "0.01", "--run-name", "lr-0.01")
	// The newer run (lr-0.01) is the first row, so the one the comparison
	// opens; it gets a figure too.
	runID := strings.Fields(out[strings.LastIndex(out, "run_id=")+len("run_id="):])[0]

	var p project
	as(t, alice, "GET", "/projects/webproj", nil).JSON(t, &p)
	logPNG(t, "webproj", alice, runID)
	var exps []struct{ ID, Name string }
	as(t, alice, "GET", "/experiments?project_id="+p.ID, nil).JSON(t, &exps)
	expID := ""
	for _, e := range exps {
		if e.Name == "iris" {
			expID = e.ID
		}
	}
	if expID == "" {
		t.Fatalf("no experiment iris in %+v", exps)
	}

	// Runs table: a bad filter is an inline error, a good one filters.
	b.run("opening the runs", 30*time.Second,
		hash("#/projects/"+p.ID+"/experiments/"+expID),
		waitJS(`document.querySelectorAll('[data-testid=run-link]').length === 2`),
		chromedp.SendKeys(`[data-testid=run-filter]`, "metrics.nosuch >>> 1\n", chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid=filter-error]`, chromedp.ByQuery),
	)
	b.run("filtering runs", 30*time.Second,
		chromedp.Click(`//button[text()="Clear"]`, chromedp.BySearch),
		waitJS(`document.querySelector('[data-testid=run-filter]').value === ''`),
		chromedp.SendKeys(`[data-testid=run-filter]`, "attributes.run_name = 'lr-0.05'\n", chromedp.ByQuery),
		waitJS(`document.querySelectorAll('[data-testid=run-link]').length === 1 && !document.querySelector('[data-testid=filter-error]')`),
		chromedp.Click(`//button[text()="Clear"]`, chromedp.BySearch),
		waitJS(`document.querySelectorAll('[data-testid=run-link]').length === 2`),
	)
	// Compare both runs: each metric chart overlays two series.
	b.run("comparing runs", time.Minute,
		chromedp.Click(`tbody tr:nth-child(1) input[type=checkbox]`, chromedp.ByQuery),
		chromedp.Click(`tbody tr:nth-child(2) input[type=checkbox]`, chromedp.ByQuery),
		chromedp.Click(`[data-testid=compare]`, chromedp.ByQuery),
		waitJS(`document.querySelectorAll('[data-testid=chart] canvas').length >= 4`),
	)
	var legends int
	b.run("reading a chart legend", 10*time.Second, chromedp.Evaluate(
		`[...document.querySelectorAll('[data-testid=chart]')].find(c => c.querySelector('h3').textContent === 'test_accuracy').querySelectorAll('.u-legend .u-series').length`, &legends))
	if legends != 3 { // the step column and two runs
		t.Fatalf("test_accuracy chart has %d legend entries, want step + 2 runs", legends)
	}
	// accuracy is logged at step 0 only: its step axis is whole steps
	// centred on 0 (the points in the middle), not uPlot's 0–100 with
	// them at the left edge.
	var oneStep string
	b.run("reading a one-step axis", 10*time.Second, chromedp.Evaluate(
		`[...document.querySelectorAll('[data-testid=chart]')].find(c => c.querySelector('h3').textContent === 'accuracy').querySelector('[data-xticks]').dataset.xticks`, &oneStep))
	if ticks := strings.Fields(oneStep); len(ticks) < 2 || len(ticks) > 5 || ticks[0] != "-"+ticks[len(ticks)-1] || !slices.Contains(ticks, "0") {
		t.Errorf("the step axis of a metric logged at step 0 only is labelled %q; want a few whole steps centred on 0, such as -1 0 1", oneStep)
	} else {
		for _, tick := range ticks {
			if _, err := strconv.Atoi(tick); err != nil {
				t.Errorf("the one-step axis is labelled %q: %q is not a whole step", oneStep, tick)
			}
		}
	}
	if !strings.Contains(b.text(`[data-testid=params]`), "learning_rate") {
		t.Fatal("params table lacks learning_rate")
	}
	// Artifacts: JSON pretty-printed, CSV as a table.
	b.run("previewing artifacts", time.Minute,
		chromedp.Click(`//ul[@data-testid="artifacts"]//button[contains(., "reports/")]`, chromedp.BySearch),
		chromedp.Click(`//ul[@data-testid="artifacts"]//button[contains(., "summary.json")]`, chromedp.BySearch),
		waitJS(`(document.querySelector('[data-testid=preview] pre')||{}).textContent?.includes('"accuracy"')`),
		chromedp.Click(`//ul[@data-testid="artifacts"]//button[contains(., "data/")]`, chromedp.BySearch),
		chromedp.Click(`//ul[@data-testid="artifacts"]//button[contains(., "predictions.csv")]`, chromedp.BySearch),
		waitJS(`document.querySelectorAll('[data-testid=csv] tbody tr').length > 5`),
	)
	// An image: it must actually decode and draw, not just have a tag.
	b.run("previewing a PNG", time.Minute,
		chromedp.Click(`//ul[@data-testid="artifacts"]//button[contains(., "..")]`, chromedp.BySearch),
		chromedp.Click(`//ul[@data-testid="artifacts"]//button[contains(., "..")]`, chromedp.BySearch),
		chromedp.Click(`//ul[@data-testid="artifacts"]//button[contains(., "plots/")]`, chromedp.BySearch),
		chromedp.Click(`//ul[@data-testid="artifacts"]//button[contains(., "curve.png")]`, chromedp.BySearch),
		waitJS(`(() => { const i = document.querySelector('[data-testid=preview] img'); return i && i.complete && i.naturalWidth === 120 && i.naturalHeight === 60; })()`),
	)
	b.run("scrolling to the top", 5*time.Second, chromedp.Evaluate(`window.scrollTo(0,0)`, nil))
	b.screenshot("run")

	// Registry: set an alias, then deploy that version.
	b.run("setting an alias", time.Minute,
		hash("#/projects/"+p.ID+"/models/iris-web"),
		chromedp.WaitVisible(`tr[data-version="1"] [data-testid=alias-input]`, chromedp.ByQuery),
		chromedp.SendKeys(`tr[data-version="1"] [data-testid=alias-input]`, "champion", chromedp.ByQuery),
		chromedp.Click(`tr[data-version="1"] [data-testid=set-alias]`, chromedp.ByQuery),
		waitJS(`document.querySelector('tr[data-version="1"]')?.textContent.includes('@champion')`),
	)
	// A deployment that follows @champion: the page says which alias it
	// follows and the version it serves, and has no rollover yet.
	b.run("deploying @champion", time.Minute,
		chromedp.Click(`tr[data-version="1"] [data-testid=deploy-alias][data-alias=champion]`, chromedp.ByQuery),
		chromedp.Click(`[data-testid=confirm-ok]`, chromedp.ByQuery),
		waitJS(`location.hash.startsWith('#/deployments/')`),
	)
	b.run("waiting for the deployment to run", 5*time.Minute,
		waitJS(`(document.querySelector('h1 [data-testid=status]')||{}).textContent === 'running'`))
	if got := b.text(`[data-testid=follows]`); !strings.Contains(got, "@champion") || b.text(`[data-testid=served-version]`) != "1" {
		t.Errorf("the deployment page says %q (serving %q); want it to follow @champion, serving version 1", got, b.text(`[data-testid=served-version]`))
	}
	if got := b.text(`[data-testid=rollovers]`); !strings.Contains(got, "None yet: version 1") {
		t.Errorf("the rollover history of a new deployment reads %q, want none yet", got)
	}
	// One row of typed inputs from the signature, prefilled from the
	// model's input example.
	var sch struct {
		Inputs       []struct{ Name, Type string }
		InputExample struct {
			Columns []string
			Data    [][]any
		} `json:"input_example"`
	}
	var fields []struct{ Col, Type, Input, Value string }
	b.run("reading the form", 30*time.Second,
		waitJS(`document.querySelectorAll('[data-col]').length > 0`),
		waitJS(`document.querySelector('table.kv a')?.textContent === 'webproj'`), // the project by name, not id
		chromedp.Evaluate(`[...document.querySelectorAll('[data-col]')].map(e => ({Col: e.dataset.col, Type: e.dataset.type, Input: e.type, Value: e.value}))`, &fields))
	var depURL string
	b.run("reading the deployment url", 5*time.Second, chromedp.Location(&depURL))
	depID := depURL[strings.LastIndex(depURL, "/")+1:]
	as(t, alice, "GET", "/deployments/"+depID+"/schema", nil).JSON(t, &sch)
	if len(fields) != 4 || len(sch.Inputs) != 4 || len(sch.InputExample.Data) == 0 {
		t.Fatalf("try-it form has inputs %+v, want the 4 iris features of the signature %+v", fields, sch)
	}
	for i, f := range fields {
		want := fmt.Sprint(sch.InputExample.Data[0][i])
		if f.Col != sch.Inputs[i].Name || f.Type != sch.Inputs[i].Type || f.Input != "number" || f.Value != want {
			t.Errorf("field %d is %+v; want %s, a number input of type %s prefilled with %s", i, f, sch.Inputs[i].Name, sch.Inputs[i].Type, want)
		}
	}
	// A required field left empty: said under the field, nothing sent.
	first := fmt.Sprintf(`[data-col=%q]`, fields[0].Col)
	b.run("predicting with an empty field", 30*time.Second,
		fill(first, ""),
		chromedp.Click(`[data-testid=predict]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid=field-error]`, chromedp.ByQuery))
	if n := b.count(`[data-testid=answer]`); n != 0 || !strings.Contains(b.text(`[data-testid=field-error]`), "required") {
		t.Fatalf("an empty required field: %q and %d answers", b.text(`[data-testid=field-error]`), n)
	}
	b.run("predicting", time.Minute,
		chromedp.SendKeys(first, "5.1", chromedp.ByQuery),
		waitJS(`!document.querySelector('[data-testid=field-error]')`),
		chromedp.Click(`[data-testid=predict]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid=answer]`, chromedp.ByQuery))
	if ans := b.text(`[data-testid=answer]`); !strings.Contains(ans, "predictions") {
		t.Fatalf("predict answer %q", ans)
	}
	// @champion moves to version 2: the open page shows the rollover as
	// it goes (from /events, no reload) and then serves version 2. The
	// form reads version 2's signature then, and keeps what the user typed.
	b.run("typing a value", 10*time.Second, fill(first, "6.3"))
	b.run("marking the page", 5*time.Second, chromedp.Evaluate(`window.__beforeRollover = 1`, nil))
	expect(t, as(t, alice, "PUT", "/model-versions/2/aliases/champion?project_id="+p.ID+"&model_id=iris-web", nil), 200)
	b.run("watching the rollover to version 2", 5*time.Minute,
		waitJS(`document.querySelector('[data-testid=rollovers] tr[data-rollover="1-2"] [data-testid=rollover-result]')?.textContent === 'succeeded'`),
		waitJS(`document.querySelector('[data-testid=served-version]')?.textContent === '2'`))
	var marker2 int
	b.run("checking no reload happened", 5*time.Second, chromedp.Evaluate(`window.__beforeRollover || 0`, &marker2))
	var typed string
	b.run("reading the typed value", 10*time.Second,
		waitJS(`document.querySelector('[data-testid=tryit]')?.dataset.schemaVersion === '2'`), // version 2's signature has arrived
		waitJS(`document.querySelectorAll('[data-col]').length > 0`),
		chromedp.Value(first, &typed, chromedp.ByQuery))
	if typed != "6.3" {
		t.Errorf("after the rollover the first field reads %q; want 6.3, the value typed before it", typed)
	}
	if row := b.text(`[data-testid=rollovers] tr[data-rollover="1-2"]`); marker2 != 1 || !strings.Contains(row, "v1 → v2") {
		t.Errorf("the rollover row reads %q (reload marker %d); want v1 → v2 shown live", row, marker2)
	}
	b.screenshot("deployment")

	// The viewer: sees the project and deployment, but no button that would 403.
	v := newBrowser(t, 390, 844)
	v.signIn(victor, "victor")
	v.run("viewer's projects", 30*time.Second, chromedp.WaitVisible(row, chromedp.ByQuery),
		waitJS(`document.querySelector('tr[data-project="webproj"] [data-testid=status]')?.textContent === 'running'`))
	for _, sel := range []string{"run", "terminate", "archive", "delete", "restore"} {
		if n := v.count(row + ` [data-testid=` + sel + `]`); n != 0 {
			t.Errorf("the viewer sees %d %q buttons on webproj", n, sel)
		}
	}
	v.screenshot("projects-phone")
	v.run("viewer's model page", 30*time.Second,
		hash("#/projects/"+p.ID+"/models/iris-web"),
		chromedp.WaitVisible(`tr[data-version="1"]`, chromedp.ByQuery))
	if n := v.count(`[data-testid=deploy], [data-testid=deploy-alias], [data-testid=alias-input]`); n != 0 {
		t.Errorf("the viewer sees %d deploy/alias controls", n)
	}
	v.run("viewer's deployment page", 30*time.Second,
		hash("#/deployments/"+depID),
		chromedp.WaitVisible(`[data-testid=tryit]`, chromedp.ByQuery))
	if n := v.count(`[data-testid=stop], [data-testid=delete-deployment]`); n != 0 {
		t.Errorf("the viewer sees %d stop/delete buttons on the deployment", n)
	}

	// Back to alice: stop and delete the deployment, then the project.
	b.run("stopping the deployment", 3*time.Minute,
		chromedp.Click(`[data-testid=stop]`, chromedp.ByQuery),
		waitJS(`(document.querySelector('h1 [data-testid=status]')||{}).textContent === 'stopped'`))
	// The viewer's open page follows along through /events.
	v.run("viewer sees the stop live", time.Minute,
		waitJS(`(document.querySelector('h1 [data-testid=status]')||{}).textContent === 'stopped'`))
	b.run("deleting the deployment", time.Minute,
		chromedp.Click(`[data-testid=delete-deployment]`, chromedp.ByQuery),
		chromedp.Click(`[data-testid=confirm-ok]`, chromedp.ByQuery),
		waitJS(`location.hash === '#/deployments'`))
	// Back on the projects table: the runs are counted; a rename is made
	// in place, a bad name refused under the field.
	b.run("counting runs", 30*time.Second,
		hash("#/projects"),
		waitJS(`document.querySelector('tr[data-project="webproj"] [data-testid=runs]')?.textContent === '2'`))
	b.run("renaming to a bad name", 30*time.Second,
		chromedp.Click(row+` [data-testid=rename]`, chromedp.ByQuery),
		chromedp.WaitVisible(row+` [data-testid=rename-input]`, chromedp.ByQuery),
		fill(row+` [data-testid=rename-input]`, "9 lives"),
		chromedp.Click(row+` [data-testid=rename-save]`, chromedp.ByQuery),
		waitJS(`document.querySelector('tr[data-project="webproj"] [role=alert]')?.textContent.includes('starts with a letter')`))
	row = `tr[data-project="webproj2"]`
	b.run("renaming", 30*time.Second,
		fill(`[data-testid=rename-input]`, "webproj2"),
		chromedp.Click(`[data-testid=rename-save]`, chromedp.ByQuery),
		chromedp.WaitVisible(row+` a`, chromedp.ByQuery))
	expect(t, as(t, alice, "GET", "/projects/webproj2", nil), 200)
	b.run("terminating and deleting the project", 3*time.Minute,
		chromedp.WaitVisible(row+` [data-testid=terminate]`, chromedp.ByQuery),
		chromedp.Click(row+` [data-testid=terminate]`, chromedp.ByQuery),
		chromedp.Click(`[data-testid=confirm-ok]`, chromedp.ByQuery),
		waitJS(`document.querySelector('tr[data-project="webproj2"] [data-testid=status]')?.textContent === 'terminated'`),
		chromedp.Click(row+` [data-testid=delete]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid=confirm-name]`, chromedp.ByQuery),
	)
	var disabled bool
	b.run("confirm stays disabled until the name is typed", 5*time.Second,
		chromedp.Evaluate(`document.querySelector('[data-testid=confirm-ok]').disabled`, &disabled))
	if !disabled {
		t.Fatal("deleting a project is confirmable without typing its name")
	}
	b.run("confirming the delete", time.Minute,
		chromedp.SendKeys(`[data-testid=confirm-name]`, "webproj2", chromedp.ByQuery),
		chromedp.Click(`[data-testid=confirm-ok]`, chromedp.ByQuery),
		waitJS(`!document.querySelector('tr[data-project="webproj2"]')`))
	expect(t, as(t, alice, "GET", "/projects/webproj2", nil), 404)
}

// TestChartDownsample: a 100,000-point history is drawn from at most
// 2,000 points that keep its extremes, in the panel's own module.
func TestChartDownsample(t *testing.T) {
	b := newBrowser(t, 1280, 900)
	var got struct {
		N        int
		Min, Max float64
		Ordered  bool
	}
	b.run("downsampling", 30*time.Second,
		chromedp.Navigate(panel.URL+"/"),
		chromedp.Evaluate(`(async () => {
			const { downsample } = await import('/ui/app/chart.js');
			const pts = Array.from({ length: 100000 }, (_, i) => [i, Math.sin(i / 700)]);
			pts[31337][1] = 50; pts[77777][1] = -50; // one spike each way
			const d = downsample(pts);
			return { N: d.length, Min: Math.min(...d.map(p => p[1])), Max: Math.max(...d.map(p => p[1])),
				Ordered: d.every((p, i) => i === 0 || d[i - 1][0] < p[0]) };
		})()`, &got, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if got.N == 0 || got.N > 2000 || got.Min != -50 || got.Max != 50 || !got.Ordered {
		t.Fatalf("downsampled 100,000 points to %+v; want at most 2000 in step order, keeping the spikes -50 and 50", got)
	}
}

// logPNG logs a 120x60 PNG to a run as plots/curve.png with MLflow's own
// client, as a training script would log a figure.
func logPNG(t *testing.T, project, token, runID string) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 120, 60))
	for x := 0; x < 120; x++ {
		for y := 0; y < 60; y++ {
			img.Set(x, y, color.RGBA{uint8(x * 2), uint8(y * 4), 160, 255})
		}
	}
	dir := filepath.Join(t.TempDir(), "plots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "curve.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(filepath.Join(repoRoot, ".venv", "bin", "python"), "-c",
		"import sys, mlflow; mlflow.MlflowClient().log_artifacts(sys.argv[1], sys.argv[2], artifact_path='plots')", runID, dir)
	cmd.Env = append(os.Environ(),
		"MLFLOW_TRACKING_URI="+panel.URL+"/projects/"+project+"/mlflow",
		"MLFLOW_TRACKING_TOKEN="+token, "GIT_PYTHON_REFRESH=quiet")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("logging a PNG: %v\n%s", err, out)
	}
}

// TestTryItFieldsFromSignature: every MLflow column type gets its own
// kind of input, prefilled from the example, and a value of the wrong
// kind is refused with a message instead of being sent (the iris model
// of TestPanelInABrowser only has doubles).
func TestTryItFieldsFromSignature(t *testing.T) {
	b := newBrowser(t, 1280, 900)
	var got struct {
		Fields []struct {
			Name, Type, Value string
			Required          bool
			Checked           bool
		}
		Errors []string
		Values []any
	}
	b.run("building fields", 30*time.Second,
		chromedp.Navigate(panel.URL+"/"),
		chromedp.Evaluate(`(async () => {
			const { signatureFields, fieldValue } = await import('/ui/app/deployments.js');
			const schema = {
				inputs: [
					{ name: 'age', type: 'long', required: true },
					{ name: 'smoker', type: 'boolean', required: true },
					{ name: 'city', type: 'string', required: false },
					{ name: 'bmi', type: 'double', required: true },
				],
				input_example: { columns: ['age', 'smoker', 'city', 'bmi'], data: [[41, true, 'Lyon', 23.5]] },
			};
			const fs = signatureFields(schema, []);
			const f = (n) => fs.find((x) => x.name === n);
			return {
				Fields: fs.map((x) => ({ Name: x.name, Type: x.type, Value: x.type === 'boolean' ? '' : x.value, Required: x.required, Checked: x.value === true })),
				Errors: [fieldValue(f('age'), '41.5').error || '', fieldValue(f('bmi'), 'abc').error || '', fieldValue(f('age'), '').error || ''],
				Values: [fieldValue(f('age'), '42').value, fieldValue(f('smoker'), false).value, fieldValue(f('city'), '').value, fieldValue(f('bmi'), '1e1').value],
			};
		})()`, &got, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	want := []struct{ name, typ, value string }{{"age", "long", "41"}, {"smoker", "boolean", ""}, {"city", "string", "Lyon"}, {"bmi", "double", "23.5"}}
	if len(got.Fields) != len(want) {
		t.Fatalf("fields %+v", got.Fields)
	}
	for i, w := range want {
		f := got.Fields[i]
		if f.Name != w.name || f.Type != w.typ || f.Value != w.value {
			t.Errorf("field %d = %+v, want %s of type %s prefilled %q", i, f, w.name, w.typ, w.value)
		}
	}
	if !got.Fields[1].Checked || got.Fields[2].Required {
		t.Errorf("smoker should start checked (example true) and city be optional: %+v", got.Fields)
	}
	if !strings.Contains(got.Errors[0], "whole number") || !strings.Contains(got.Errors[1], "number") || !strings.Contains(got.Errors[2], "required") {
		t.Errorf("refusals %q: want a whole-number, a number and a required message", got.Errors)
	}
	if fmt.Sprint(got.Values) != "[42 false <nil> 10]" {
		t.Errorf("converted values %v, want [42 false <nil> 10]", got.Values)
	}
}
