package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
)

// depResync is how often the panel's following deployments look their
// alias up; the event test turns it off to prove the event alone moves
// the deployment.
var depResync atomic.Int64

const (
	followModel = "follow-e2e"
	followDrain = 2 * time.Second
)

func init() {
	depResync.Store(int64(time.Second))
	serviceConfigurers = append(serviceConfigurers, func(cfg *stack.Config, home string) {
		cfg.Deployer.AliasResyncFn = func() time.Duration { return time.Duration(depResync.Load()) }
		cfg.Deployer.Drain = followDrain
	})
}

// followVersions are the versions of followModel, registered once: two
// that answer their own number, one that answers /ping but fails every
// predict, one whose server cannot load it.
type followVersions struct{ one, two, predictFails, loadFails string }

var (
	followOnce sync.Once
	followVers *followVersions
)

// followSetup registers followModel's versions in the deployer fixture's
// project with the stock MLflow client, each logged with an input example.
func followSetup(t testing.TB) (*depFixture, followVersions) {
	t.Helper()
	f := depSetup(t)
	followOnce.Do(func() {
		script := fmt.Sprintf(`import os, mlflow, pandas as pd
from mlflow.pyfunc import PythonModel

class Const(PythonModel):
    """Answers its value for every row, so each answer tells its version."""
    def __init__(self, value, mode):
        self.value, self.mode = value, mode
    def load_context(self, context):
        # Logging validates the example by loading the model; the model
        # server has no E2E_LOGGING, so there "load" breaks.
        if self.mode == "load" and os.environ.get("E2E_LOGGING") != "1":
            raise RuntimeError("this version cannot be loaded, on purpose")
    def predict(self, context, model_input, params=None):
        if self.mode == "predict" and os.environ.get("E2E_LOGGING") != "1":
            raise RuntimeError("this version fails every predict, on purpose")
        return [self.value] * len(model_input)

mlflow.set_experiment("follow-e2e")
for value, mode in [(1.0, ""), (2.0, ""), (3.0, "predict"), (4.0, "load")]:
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=Const(value, mode),
            input_example=pd.DataFrame({"x": [1.0, 2.0]}), registered_model_name=%q)
    print("version=" + str(info.registered_model_version))
`, followModel)
		out := python(t, script, "MLFLOW_TRACKING_URI="+f.project.MlflowURI, "E2E_LOGGING=1")
		var vs []string
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "version="); ok {
				vs = append(vs, v)
			}
		}
		if len(vs) != 4 {
			t.Fatalf("registered versions %v, want 4:\n%s", vs, out)
		}
		followVers = &followVersions{vs[0], vs[1], vs[2], vs[3]}
	})
	if followVers == nil {
		t.Fatal("registering the follow-e2e versions failed; see the first failing test")
	}
	return f, *followVers
}

// setAlias points alias at version through the panel's registry API.
func setAlias(t testing.TB, p project, alias, version string) {
	t.Helper()
	q := url.Values{"project_id": {p.ID}, "model_id": {followModel}}
	expect(t, call(t, http.MethodPut, "/model-versions/"+version+"/aliases/"+alias+"?"+q.Encode(), nil), http.StatusOK)
}

// followDeployment is a deployment with its rollover history.
type followDeployment struct {
	deployment
	FollowAlias   string `json:"follow_alias"`
	RolloverError string `json:"rollover_error"`
	AliasError    string `json:"alias_error"`
	Rollovers     []struct {
		From     string `json:"from"`
		To       string `json:"to"`
		Started  string `json:"started"`
		Finished string `json:"finished"`
		Result   string `json:"result"`
		Check    string `json:"check"`
		Error    string `json:"error"`
	} `json:"rollovers"`
}

func getFollow(t testing.TB, id string) followDeployment {
	t.Helper()
	r := call(t, http.MethodGet, "/deployments/"+id, nil)
	expect(t, r, http.StatusOK)
	var d followDeployment
	r.JSON(t, &d)
	return d
}

// waitFollow polls the deployment until ok, or fails after timeout.
func waitFollow(t testing.TB, id, what string, timeout time.Duration, ok func(followDeployment) bool) followDeployment {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := getFollow(t, id)
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s not %s after %s: %+v", id, what, timeout, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// predictLoad is a steady predict load: clients that each send one
// predict after another through the gateway and record every answer.
type predictLoad struct {
	id     string
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	ok     int
	byVer  map[string]int
	fails  []string
	took   []time.Duration
	lastAt map[string]time.Time // when each version last answered
}

var followBody = []byte(`{"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}`)

func startLoad(id string, clients int) *predictLoad {
	l := &predictLoad{id: id, stop: make(chan struct{}), byVer: map[string]int{}, lastAt: map[string]time.Time{}}
	client := &http.Client{Timeout: time.Minute}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.one(client)
			}
		}()
	}
	return l
}

// one sends a predict and checks its answer came from one version: the
// header names it and the prediction is that version's constant.
func (l *predictLoad) one(client *http.Client) {
	start := time.Now()
	resp, err := client.Post(panel.URL+"/deployments/"+l.id+"/predict", "application/json", bytes.NewReader(followBody))
	if err != nil {
		l.fail("transport: " + err.Error())
		return
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	ver := resp.Header.Get("Mlpanel-Model-Version")
	if resp.StatusCode != http.StatusOK {
		l.fail(fmt.Sprintf("HTTP %d from version %q: %s", resp.StatusCode, ver, raw))
		return
	}
	var out struct {
		Predictions []float64 `json:"predictions"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Predictions) != 1 {
		l.fail(fmt.Sprintf("undecodable answer of version %q: %s", ver, raw))
		return
	}
	if got := fmt.Sprint(out.Predictions[0]); got != followValue[ver] {
		l.fail(fmt.Sprintf("version %q answered %s, want %s", ver, got, followValue[ver]))
		return
	}
	l.mu.Lock()
	l.ok++
	l.byVer[ver]++
	l.took = append(l.took, took)
	l.lastAt[ver] = time.Now()
	l.mu.Unlock()
}

// followValue is what each good version answers (it is its number).
var followValue = map[string]string{}

func (l *predictLoad) fail(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails = append(l.fails, msg)
}

func (l *predictLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

// snapshot is how many answers each version gave so far.
func (l *predictLoad) snapshot() (ok int, byVer map[string]int, fails []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byVer = map[string]int{}
	for k, v := range l.byVer {
		byVer[k] = v
	}
	return l.ok, byVer, append([]string(nil), l.fails...)
}

// checkLoad fails t on any failed predict.
func checkLoad(t *testing.T, l *predictLoad) {
	t.Helper()
	ok, byVer, fails := l.snapshot()
	if len(fails) > 0 {
		t.Fatalf("%d of %d predicts failed under the rollover (answers by version %v); first: %s", len(fails), ok+len(fails), byVer, fails[0])
	}
}

// TestDeployFollowAlias: a deployment that follows @champion rolls over
// when the alias moves, under a steady load of 8 clients with no failed
// predict and every answer from exactly one version; a version that
// fails its predict check, or cannot load, leaves the old one serving and
// says so; a removed alias keeps the last version serving.
func TestDeployFollowAlias(t *testing.T) {
	f, v := followSetup(t)
	p := f.project
	followValue[v.one], followValue[v.two] = "1", "2"
	setAlias(t, p, "champion", v.one)

	// Unknown alias: 400 naming the alias and the model.
	r := call(t, http.MethodPost, "/deployments", map[string]any{"project_id": p.ID, "model_id": followModel, "version": "@no-such-alias"})
	expect(t, r, http.StatusBadRequest)
	if msg := r.Message(); !strings.Contains(msg, "no-such-alias") || !strings.Contains(msg, followModel) {
		t.Fatalf("unknown alias answered %q, want the alias and the model named", msg)
	}
	r = call(t, http.MethodPost, "/deployments", map[string]any{"project_id": p.ID, "model_id": followModel, "version": "@champion", "follow_alias": "prod"})
	expect(t, r, http.StatusBadRequest)

	created := createDeployment(t, map[string]any{"project_id": p.ID, "model_id": followModel, "follow_alias": "champion"})
	var d followDeployment
	r = call(t, http.MethodGet, "/deployments/"+created.ID, nil)
	r.JSON(t, &d)
	if d.Version != v.one || d.FollowAlias != "champion" || d.Rollovers == nil {
		t.Fatalf("created %+v: want version %s following champion, an empty history", d, v.one)
	}
	waitDeployment(t, d.ID, "running", 4*time.Minute)
	old := getFollow(t, d.ID)

	// The alias moves under load.
	load := startLoad(d.ID, 8)
	defer func() {
		select {
		case <-load.stop:
		default:
			load.end()
		}
	}()
	time.Sleep(2 * time.Second)
	setAlias(t, p, "champion", v.two)
	d = waitFollow(t, d.ID, "rolled over to "+v.two, 4*time.Minute, func(d followDeployment) bool {
		return d.Version == v.two && len(d.Rollovers) > 0 && d.Rollovers[len(d.Rollovers)-1].Result == "succeeded"
	})
	switchedAt := time.Now()
	// The old server drains, then stops; the load goes on meanwhile.
	deadline := time.Now().Add(time.Minute)
	for groupAlive(old.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the old model server %d still runs a minute after the rollover", old.Pid)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	checkLoad(t, load)
	_, byVer, _ := load.snapshot()
	if byVer[v.one] == 0 || byVer[v.two] == 0 || len(byVer) != 2 {
		t.Fatalf("answers by version %v: want both %s and %s, nothing else", byVer, v.one, v.two)
	}
	load.mu.Lock()
	lastOld := load.lastAt[v.one]
	load.mu.Unlock()
	if lastOld.After(switchedAt.Add(followDrain + 5*time.Second)) {
		t.Errorf("version %s still answered at %s, well after the switch at %s", v.one, lastOld, switchedAt)
	}
	h := d.Rollovers[len(d.Rollovers)-1]
	if h.From != v.one || h.To != v.two || h.Started == "" || h.Finished == "" || !strings.Contains(h.Check, "input example") {
		t.Fatalf("history entry %+v: want from %s to %s, started, finished, checked with the input example", h, v.one, v.two)
	}
	if d.Pid == old.Pid || d.Port == old.Port || d.ModelURI != "models:/"+followModel+"/"+v.two {
		t.Fatalf("after the rollover %+v: want the new server", d)
	}

	// A version that answers /ping but fails its predict: 2 keeps serving.
	for _, bad := range []struct{ version, want string }{
		{v.predictFails, "predict"},
		{v.loadFails, "/ping"},
	} {
		before := len(d.Rollovers)
		setAlias(t, p, "champion", bad.version)
		d = waitFollow(t, d.ID, "failed over "+bad.version, 5*time.Minute, func(d followDeployment) bool {
			return len(d.Rollovers) > before && d.Rollovers[len(d.Rollovers)-1].Result == "failed"
		})
		h := d.Rollovers[len(d.Rollovers)-1]
		if d.Version != v.two || d.Status != "running" || !strings.Contains(d.RolloverError, bad.version) || !strings.Contains(h.Error, bad.want) {
			t.Fatalf("after a failed rollover to %s: %+v (last %+v), want %s serving and the failure (%q) reported", bad.version, d, h, v.two, bad.want)
		}
		checkLoad(t, load)
	}
	load.end()
	checkLoad(t, load)
	ok, byVer, _ := load.snapshot()
	t.Logf("%d predicts by 8 clients through three rollovers, none failed; answers by version %v", ok, byVer)
	if len(byVer) != 2 {
		t.Fatalf("answers by version %v: a failed version answered", byVer)
	}

	// The events said so, in order.
	var changes []string
	for _, ev := range depStreamEvents(t, d.ID, 200) {
		switch c := strings.TrimPrefix(ev.Type, events.TypePrefix+".deployment."); c {
		case "rollover_started", "rolled_over", "rollover_failed":
			changes = append(changes, c)
		}
	}
	if want := "rollover_started,rolled_over,rollover_started,rollover_failed,rollover_started,rollover_failed"; strings.Join(changes, ",") != want {
		t.Errorf("rollover events %v, want %s", changes, want)
	}

	// The alias goes: version 2 keeps serving, and the deployment says so.
	q := url.Values{"project_id": {p.ID}, "model_id": {followModel}}
	expect(t, call(t, http.MethodDelete, "/model-versions/"+v.loadFails+"/aliases/champion?"+q.Encode(), nil), http.StatusOK)
	d = waitFollow(t, d.ID, "reporting the removed alias", time.Minute, func(d followDeployment) bool { return d.AliasError != "" })
	if d.Version != v.two || d.Status != "running" || !strings.Contains(d.AliasError, "champion") {
		t.Fatalf("after the alias was removed %+v", d)
	}
	r = call(t, http.MethodPost, "/deployments/"+d.ID+"/predict", followBody)
	expect(t, r, http.StatusOK)
	if r.Header.Get("Mlpanel-Model-Version") != v.two {
		t.Fatalf("predict answered by version %q, want %s", r.Header.Get("Mlpanel-Model-Version"), v.two)
	}
}

// TestDeployFollowAliasEvent: a registry alias_set event moves a
// following deployment at once, without waiting for the resync.
func TestDeployFollowAliasEvent(t *testing.T) {
	f, v := followSetup(t)
	p := f.project
	followValue[v.one], followValue[v.two] = "1", "2"
	setAlias(t, p, "events", v.one)
	depResync.Store(int64(time.Hour)) // only the event can move it
	defer depResync.Store(int64(time.Second))

	d := createDeployment(t, map[string]any{"project_id": p.ID, "model_id": followModel, "version": "@events"})
	waitDeployment(t, d.ID, "running", 4*time.Minute)

	// Moved straight in MLflow, on the server's own socket: the panel's
	// proxy (which publishes registry events) never sees it.
	if code := mlflowDirect(t, getProject(t, p.ID), http.MethodPost, "registered-models/alias", map[string]string{"name": followModel, "alias": "events", "version": v.two}); code != http.StatusOK {
		t.Fatalf("setting the alias on the tracking server itself answered %d", code)
	}
	time.Sleep(5 * time.Second)
	if got := getFollow(t, d.ID); got.Version != v.one || len(got.Rollovers) != 0 {
		t.Fatalf("without an event or resync the deployment moved: %+v", got)
	}

	// The registry event, in the shape the registry publishes it.
	ev, err := events.New("mlpanel/tracking", "model", p.ID, "alias_set", map[string]any{
		"project_id": p.ID, "name": followModel, "alias": "events", "version": v.two, "previous_version": v.one,
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(ev)
	subject := "mlpanel.events.model." + p.ID + "." + followModel + ".alias_set"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(panel.NC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, subject, raw, jetstream.WithMsgID(ev.ID)); err != nil {
		t.Fatalf("publishing %s on the stream: %v", subject, err)
	}
	waitFollow(t, d.ID, "rolled over by the event", 4*time.Minute, func(d followDeployment) bool {
		return d.Version == v.two && len(d.Rollovers) == 1 && d.Rollovers[0].Result == "succeeded"
	})
}

// TestDeployFollowAliasGCP: a gcp deployment that follows an alias rolls
// over to a new instance under load, then deletes the old instance.
func TestDeployFollowAliasGCP(t *testing.T) {
	f, v := followSetup(t)
	p := f.project
	followValue[v.one], followValue[v.two] = "1", "2"
	setAlias(t, p, "gcp-champion", v.one)
	d := createDeployment(t, map[string]any{"project_id": p.ID, "model_id": followModel, "version": "@gcp-champion", "type": "gcp"})
	waitDeployment(t, d.ID, "running", 5*time.Minute)
	old := getFollow(t, d.ID)

	load := startLoad(d.ID, 8)
	time.Sleep(2 * time.Second)
	setAlias(t, p, "gcp-champion", v.two)
	nd := waitFollow(t, d.ID, "rolled over to "+v.two, 5*time.Minute, func(d followDeployment) bool {
		return d.Version == v.two && len(d.Rollovers) == 1 && d.Rollovers[0].Result == "succeeded"
	})
	if nd.InstanceName == old.InstanceName || nd.Host == old.Host || !slices.Contains(depGCE.Instances(), nd.InstanceName) {
		t.Fatalf("after the rollover %+v (before %+v): want a new instance with its own address", nd, old)
	}
	deadline := time.Now().Add(time.Minute)
	for slices.Contains(depGCE.Instances(), old.InstanceName) {
		if time.Now().After(deadline) {
			t.Fatalf("old instance %s still exists a minute after the rollover", old.InstanceName)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	load.end()
	checkLoad(t, load)
	ok, byVer, _ := load.snapshot()
	t.Logf("%d predicts through the gcp rollover, none failed; answers by version %v", ok, byVer)
	if byVer[v.one] == 0 || byVer[v.two] == 0 || len(byVer) != 2 {
		t.Fatalf("answers by version %v: want both %s and %s, nothing else", byVer, v.one, v.two)
	}
}

// servingGroups are the local model servers (their leader pids) serving
// modelURI, found by their command line.
func servingGroups(t *testing.T, modelURI string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(raw), "\x00")
		// Local ones bind 127.0.0.1; the fake Compute Engine's, other addresses.
		if slices.Contains(args, "models") && slices.Contains(args, "serve") && slices.Contains(args, modelURI) && slices.Contains(args, "127.0.0.1") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestDeployFollowAliasRestart: the deployer goes down in the middle of a
// rollover, leaving both servers running as a crash would. The old
// version serves on meanwhile; the restarted deployer stops the half
// started new one, records the rollover as interrupted, and rolls over
// again, with no predict failing throughout.
func TestDeployFollowAliasRestart(t *testing.T) {
	f, v := followSetup(t)
	p := f.project
	followValue[v.one], followValue[v.two] = "1", "2"
	setAlias(t, p, "restart", v.one)
	d := createDeployment(t, map[string]any{"project_id": p.ID, "model_id": followModel, "version": "@restart"})
	waitDeployment(t, d.ID, "running", 4*time.Minute)
	oldURI, newURI := "models:/"+followModel+"/"+v.one, "models:/"+followModel+"/"+v.two

	load := startLoad(d.ID, 8)
	defer func() {
		select {
		case <-load.stop:
		default:
			load.end()
		}
	}()
	setAlias(t, p, "restart", v.two)
	// The new version's server is spawned, not yet answering: stop the
	// deployer now, keeping its servers.
	deadline := time.Now().Add(time.Minute)
	for len(servingGroups(t, newURI)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no model server for %s a minute after the alias moved: %+v", newURI, getFollow(t, d.ID))
		}
		time.Sleep(100 * time.Millisecond)
	}
	depKeepServers.Store(true)
	err := panel.StopService("deployer")
	depKeepServers.Store(false)
	if err != nil {
		t.Fatalf("stopping the deployer: %v", err)
	}
	mid := getFollowRaw(t, d.ID)
	if mid.Version != v.one || len(mid.Rollovers) != 1 || mid.Rollovers[0].Result != "in_progress" {
		t.Fatalf("the deployer stopped after the switch, not in the middle: %+v", mid)
	}
	left := servingGroups(t, newURI)
	if len(left) != 1 {
		t.Fatalf("servers of %s while the deployer is down: %v, want the half started one", newURI, left)
	}
	time.Sleep(2 * time.Second) // the old version serves without the deployer
	checkLoad(t, load)

	if err := panel.StartService("deployer"); err != nil {
		t.Fatalf("starting the deployer: %v", err)
	}
	d2 := waitFollow(t, d.ID, "rolled over after the restart", 4*time.Minute, func(d followDeployment) bool {
		n := len(d.Rollovers)
		return n >= 2 && d.Rollovers[n-1].Result == "succeeded" && d.Version == v.two
	})
	if r := d2.Rollovers[0]; r.Result != "interrupted" || !strings.Contains(r.Error, "restarted") || r.Finished == "" {
		t.Fatalf("first rollover %+v: want it interrupted by the restart", r)
	}
	if groupAlive(left[0]) {
		t.Fatalf("the half started server %d survived the restart", left[0])
	}
	deadline = time.Now().Add(time.Minute)
	for len(servingGroups(t, oldURI)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("servers of %s still run after the rollover: %v", oldURI, servingGroups(t, oldURI))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	load.end()
	checkLoad(t, load)
	ok, byVer, _ := load.snapshot()
	t.Logf("%d predicts through a deployer restart mid-rollover, none failed; answers by version %v", ok, byVer)
	if got := servingGroups(t, newURI); len(got) != 1 || got[0] != d2.Pid {
		t.Fatalf("servers of %s: %v, want just the deployment's %d", newURI, got, d2.Pid)
	}
}

// getFollowRaw reads a deployment while the deployer is down: from the
// stream's last event, since GET needs the deployer.
func getFollowRaw(t *testing.T, id string) followDeployment {
	t.Helper()
	evs := depStreamEvents(t, id, 500)
	if len(evs) == 0 {
		t.Fatalf("no events of deployment %s", id)
	}
	var d followDeployment
	if err := json.Unmarshal(evs[len(evs)-1].Data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// mlflowDirect is one call to the project's tracking server itself (its
// internalUrl, a Unix socket), bypassing the gateway: what a client that
// reaches the server some other way does, unseen by the panel.
func mlflowDirect(t testing.TB, p project, method, path string, body any) int {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, sockhttp.Target(p.InternalURL)+"/api/2.0/mlflow/"+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: sockhttp.Transport(nil)}).Do(req)
	if err != nil {
		t.Fatalf("MLflow %s %s on %s: %v", method, path, p.InternalURL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
