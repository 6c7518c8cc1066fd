package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
)

func init() {
	serviceConfigurers = append(serviceConfigurers, func(cfg *stack.Config, _ string) {
		// The receivers of these tests listen on loopback, which webhooks
		// may reach only when allowed; retries wait at most 2 s so a
		// receiver that comes back is served within the test's patience.
		cfg.Gateway.Webhooks.Allow = "127.0.0.0/8"
		cfg.Gateway.Webhooks.MaxBackoff = 2 * time.Second
	})
}

// receiver is examples/webhook-receiver running as its own process.
type receiver struct {
	cmd    *exec.Cmd
	events chan map[string]any
	log    *bytes.Buffer
}

var (
	receiverOnce sync.Once
	receiverBin  string
	receiverErr  error
)

func startReceiver(t *testing.T, addr, secret string) *receiver {
	t.Helper()
	receiverOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mlpanel-receiver-")
		if err != nil {
			receiverErr = err
			return
		}
		receiverBin = filepath.Join(dir, "webhook-receiver")
		build := exec.Command("go", "build", "-o", receiverBin, ".")
		build.Dir = filepath.Join(repoRoot, "examples", "webhook-receiver")
		build.Env = append(os.Environ(), "GOWORK=off") // as a user outside the repository builds it
		if out, err := build.CombinedOutput(); err != nil {
			receiverErr = fmt.Errorf("building the example receiver: %v\n%s", err, out)
		}
	})
	if receiverErr != nil {
		t.Fatal(receiverErr)
	}
	r := &receiver{events: make(chan map[string]any, 1000), log: &bytes.Buffer{}}
	r.cmd = exec.Command(receiverBin, "-addr", addr, "-json")
	r.cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret)
	r.cmd.Stderr = r.log
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				r.events <- ev
			}
		}
	}()
	for i := 0; i < 100; i++ { // until it listens
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) stop() {
	if r.cmd.ProcessState != nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	_ = r.cmd.Wait()
}

// next waits for the receiver's next verified event.
func (r *receiver) next(t *testing.T, timeout time.Duration) map[string]any {
	t.Helper()
	select {
	case ev := <-r.events:
		return ev
	case <-time.After(timeout):
		t.Fatalf("the receiver got no event within %s; its log:\n%s", timeout, r.log.String())
		return nil
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type webhook struct {
	ID       string   `json:"id"`
	URL      string   `json:"url"`
	Types    []string `json:"types"`
	Projects []string `json:"projects"`
	Secret   string   `json:"secret"`
}

type delivery struct {
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"`
	Attempt    int    `json:"attempt"`
	StatusCode int    `json:"status_code"`
	Outcome    string `json:"outcome"`
	Error      string `json:"error"`
}

func createWebhook(t *testing.T, base string, body map[string]any) webhook {
	t.Helper()
	r := callAt(t, base, "", http.MethodPost, "/webhooks", body)
	expect(t, r, http.StatusCreated)
	var h webhook
	r.JSON(t, &h)
	if !strings.HasPrefix(h.Secret, "whsec_") {
		t.Fatalf("the create answer has no whsec_ secret: %s", r.Body)
	}
	t.Cleanup(func() { // the panel may be gone by now
		if req, err := http.NewRequest(http.MethodDelete, base+"/webhooks/"+h.ID, nil); err == nil {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	})
	return h
}

// callAt calls another panel than the shared one, with a token or none.
func callAt(t testing.TB, base, token, method, path string, body any) response {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b.Bytes()}
}

// registryConsumer is a durable consumer of one project's registry and
// run events, as a subscriber system would make it.
func registryConsumer(t *testing.T, projectID string) jetstream.Consumer {
	t.Helper()
	js, err := jetstream.New(panel.NC)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := "e2e-registry-" + projectID
	cons, err := js.CreateOrUpdateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{
		Durable:        name,
		FilterSubjects: []string{"mlpanel.events.model." + projectID + ".>", "mlpanel.events.run." + projectID + ".>"},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteConsumer(context.Background(), events.StreamName, name) })
	return cons
}

type streamEvent struct {
	Subject string
	MsgID   string
	Event   struct {
		ID     string         `json:"id"`
		Type   string         `json:"type"`
		Source string         `json:"source"`
		Data   map[string]any `json:"data"`
	}
}

// drain reads what the consumer holds until it is quiet for quiet.
func drain(t *testing.T, cons jetstream.Consumer, quiet time.Duration) []streamEvent {
	t.Helper()
	var out []streamEvent
	for {
		batch, err := cons.Fetch(20, jetstream.FetchMaxWait(quiet))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var se streamEvent
			se.Subject, se.MsgID = m.Subject(), m.Headers().Get(jetstream.MsgIDHeader)
			if err := json.Unmarshal(m.Data(), &se.Event); err != nil {
				t.Fatalf("a message that is no CloudEvent: %s", m.Data())
			}
			out = append(out, se)
			_ = m.Ack()
		}
		if n == 0 {
			return out
		}
	}
}

// TestRegistryEventsAndWebhook: the stock MLflow client, pointed at the
// panel's proxy, finishes a run, registers a model version and sets
// @champion. Each change arrives once on a durable consumer, with the
// fixed subject scheme and data, and at the example receiver, whose
// Standard Webhooks check passed. A write MLflow refused and a write
// repeated where nothing changes publish nothing.
func TestRegistryEventsAndWebhook(t *testing.T) {
	p := runningProject(t, "events-registry")
	cons := registryConsumer(t, p.ID)
	addr := freeAddr(t)
	h := createWebhook(t, panel.URL, map[string]any{
		"url": "http://" + addr + "/hook", "project_id": p.Name,
		"types": []string{"io.mlpanel.model.*", "io.mlpanel.run.finished"},
	})
	if len(h.Projects) != 1 || h.Projects[0] != p.ID {
		t.Fatalf("the webhook's projects are %v, want [%s]", h.Projects, p.ID)
	}
	rcv := startReceiver(t, addr, h.Secret)

	proxy := panel.URL + "/projects/" + p.ID + "/mlflow"
	out := python(t, `import json, tempfile, mlflow, pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

class Zero(PythonModel):
    def predict(self, context, model_input, params=None):
        return [0.0] * len(model_input)

c = MlflowClient()
exp = c.create_experiment("events")
rid = c.create_run(exp).info.run_id
# A model with a signature in the run's artifacts/model: the version's
# events carry that signature.
sig = infer_signature(pd.DataFrame({"tenure": [1.5], "plan": ["pro"]}), [0.0])
d = tempfile.mkdtemp() + "/model"
mlflow.pyfunc.save_model(d, python_model=Zero(), signature=sig, pip_requirements=["mlflow"])
c.log_artifacts(rid, d, "model")
print("inputs=" + json.dumps(sig.inputs.to_dict()))
c.set_terminated(rid)
c.create_registered_model("churn.model")
mv = c.create_model_version("churn.model", source="mlflow-artifacts:/" + exp + "/" + rid + "/artifacts/model", run_id=rid)
c.set_registered_model_alias("churn.model", "champion", mv.version)
print("run_id=" + rid)
print("version=" + mv.version)
`, "MLFLOW_TRACKING_URI="+proxy)
	runID, version := lineValue(t, out, "run_id="), lineValue(t, out, "version=")
	var logged []columnSpec
	if err := json.Unmarshal([]byte(lineValue(t, out, "inputs=")), &logged); err != nil || len(logged) != 2 {
		t.Fatalf("the logged model's signature inputs %s: %v", lineValue(t, out, "inputs="), err)
	}

	got := drain(t, cons, 2*time.Second)
	model := "mlpanel.events.model." + p.ID + ".churn_model."
	want := []struct{ subject, typ string }{
		{"mlpanel.events.run." + p.ID + "." + runID + ".finished", "io.mlpanel.run.finished"},
		{model + "created", "io.mlpanel.model.created"},
		{model + "version_created", "io.mlpanel.model.version_created"},
		{model + "version_ready", "io.mlpanel.model.version_ready"},
		{model + "alias_set", "io.mlpanel.model.alias_set"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events on the durable consumer, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		e := got[i]
		if e.Subject != w.subject || e.Event.Type != w.typ || e.MsgID != e.Event.ID || e.Event.Source != "mlpanel/gateway" {
			t.Errorf("event %d: subject %s type %s source %s msg-id %s id %s; want %s %s from mlpanel/gateway with Nats-Msg-Id = id",
				i, e.Subject, e.Event.Type, e.Event.Source, e.MsgID, e.Event.ID, w.subject, w.typ)
		}
		if e.Event.Data["project_id"] != p.ID {
			t.Errorf("event %d: data.project_id %v, want %s", i, e.Event.Data["project_id"], p.ID)
		}
	}
	if d := got[0].Event.Data; d["run_id"] != runID || d["status"] != "FINISHED" {
		t.Errorf("run finished data %v", d)
	}
	for _, i := range []int{2, 3} {
		if d := got[i].Event.Data; d["name"] != "churn.model" || d["version"] != version || d["run_id"] != runID || !strings.HasSuffix(fmt.Sprint(d["source"]), "/artifacts/model") {
			t.Errorf("%s data %v", got[i].Event.Type, d)
		}
	}
	// version_created carries the MLmodel's signature as MLflow wrote it.
	if sig := signatureInputs(t, got[2].Event.Data); !reflect.DeepEqual(sig, logged) {
		t.Errorf("version_created signature inputs %+v, want the logged model's %+v", sig, logged)
	}
	if d := got[4].Event.Data; d["alias"] != "champion" || d["version"] != version || d["name"] != "churn.model" {
		t.Errorf("alias_set data %v", d)
	} else if _, ok := d["previous_version"]; ok {
		t.Errorf("a new alias has no previous_version: %v", d)
	}

	// The receiver got the same events, in the same order, signature checked.
	for i, e := range got {
		ev := rcv.next(t, 30*time.Second)
		if ev["id"] != e.Event.ID || ev["type"] != e.Event.Type {
			t.Fatalf("receiver event %d is %v %v, want %s %s", i, ev["type"], ev["id"], e.Event.Type, e.Event.ID)
		}
	}

	// Refused by MLflow (no version 99): nothing. The same alias set
	// again (a retry): nothing. Moving it to a second version: one event
	// that says where it was.
	r := mlflowRaw(t, project{MlflowURI: proxy}, http.MethodPost, "/api/2.0/mlflow/registered-models/alias",
		strings.NewReader(`{"name": "churn.model", "alias": "champion", "version": "99"}`))
	if r.Status < 400 {
		t.Fatalf("MLflow took an alias to a missing version: %d %s", r.Status, r.Body)
	}
	expect(t, mlflowRaw(t, project{MlflowURI: proxy}, http.MethodPost, "/api/2.0/mlflow/registered-models/alias",
		strings.NewReader(`{"name": "churn.model", "alias": "champion", "version": "`+version+`"}`)), http.StatusOK)
	if extra := drain(t, cons, 2*time.Second); len(extra) != 0 {
		t.Fatalf("a refused write and a repeated one published %+v", extra)
	}
	mv2 := mlflowRaw(t, project{MlflowURI: proxy}, http.MethodPost, "/api/2.0/mlflow/model-versions/create",
		strings.NewReader(`{"name": "churn.model", "source": "`+fmt.Sprint(got[2].Event.Data["source"])+`", "run_id": "`+runID+`"}`))
	expect(t, mv2, http.StatusOK)
	// The UI's path (ajax-api) publishes too.
	expect(t, mlflowRaw(t, project{MlflowURI: proxy}, http.MethodPost, "/ajax-api/2.0/mlflow/registered-models/alias",
		strings.NewReader(`{"name": "churn.model", "alias": "champion", "version": "2"}`)), http.StatusOK)
	moved := drain(t, cons, 2*time.Second)
	if len(moved) != 3 || moved[2].Event.Type != "io.mlpanel.model.alias_set" {
		t.Fatalf("after a new version and an alias move: %+v", moved)
	}
	if d := moved[2].Event.Data; d["version"] != "2" || d["previous_version"] != version {
		t.Errorf("the moved alias says %v, want version 2 from %s", d, version)
	}

	// The panel's own REST API publishes the same events (source tracking).
	expect(t, call(t, http.MethodDelete, "/model-versions/2/aliases/champion?project_id="+p.ID+"&model_id=churn.model", nil), http.StatusOK)
	del := drain(t, cons, 2*time.Second)
	if len(del) != 1 || del[0].Event.Type != "io.mlpanel.model.alias_deleted" || del[0].Event.Source != "mlpanel/tracking" ||
		del[0].Event.Data["previous_version"] != "2" || del[0].Event.Data["alias"] != "champion" {
		t.Fatalf("removing the alias over REST published %+v", del)
	}

	// Deleting a version drops its aliases in MLflow: each is an alias_deleted.
	expect(t, mlflowRaw(t, project{MlflowURI: proxy}, http.MethodPost, "/api/2.0/mlflow/registered-models/alias",
		strings.NewReader(`{"name": "churn.model", "alias": "staging", "version": "2"}`)), http.StatusOK)
	expect(t, mlflowRaw(t, project{MlflowURI: proxy}, http.MethodDelete, "/api/2.0/mlflow/model-versions/delete",
		strings.NewReader(`{"name": "churn.model", "version": "2"}`)), http.StatusOK)
	dropped := drain(t, cons, 2*time.Second)
	if len(dropped) != 2 || dropped[1].Event.Type != "io.mlpanel.model.alias_deleted" ||
		dropped[1].Event.Data["alias"] != "staging" || dropped[1].Event.Data["previous_version"] != "2" {
		t.Fatalf("deleting a version with an alias published %+v", dropped)
	}

	// A version registered over the panel's REST API carries it too.
	expect(t, call(t, http.MethodPost, "/registered-models?project_id="+p.ID, map[string]any{"name": "churn.model",
		"run_id": runID, "artifact_path": "model"}), http.StatusCreated)
	rest := drain(t, cons, 2*time.Second)
	if len(rest) != 2 || rest[0].Event.Type != "io.mlpanel.model.version_created" || rest[0].Event.Source != "mlpanel/tracking" {
		t.Fatalf("registering a version over REST published %+v", rest)
	}
	if sig := signatureInputs(t, rest[0].Event.Data); !reflect.DeepEqual(sig, logged) {
		t.Errorf("REST version_created signature inputs %+v, want the logged model's %+v", sig, logged)
	}

	// The deliveries log shows the attempts with the receiver's status.
	var ds []delivery
	r = call(t, http.MethodGet, "/webhooks/"+h.ID+"/deliveries?_order=ASC", nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &ds)
	if len(ds) < len(want) || ds[0].StatusCode != http.StatusNoContent || ds[0].Outcome != "delivered" || ds[0].EventID != got[0].Event.ID {
		t.Errorf("deliveries %+v", ds)
	}
}

// columnSpec is one column of an MLflow signature's inputs.
type columnSpec struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// signatureInputs are the input columns of an event's data.signature.
func signatureInputs(t *testing.T, data map[string]any) []columnSpec {
	t.Helper()
	raw, err := json.Marshal(data["signature"])
	if err != nil {
		t.Fatal(err)
	}
	var sig struct {
		Inputs  []columnSpec    `json:"inputs"`
		Outputs json.RawMessage `json:"outputs"`
	}
	if err := json.Unmarshal(raw, &sig); err != nil || len(sig.Outputs) == 0 {
		t.Errorf("data.signature %s is not an MLflow signature with inputs and outputs: %v", raw, err)
	}
	return sig.Inputs
}

func lineValue(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			return v
		}
	}
	t.Fatalf("no %s line in:\n%s", prefix, out)
	return ""
}

// TestWebhookReceiverDown: a receiver that is down while events happen
// gets every one of them, in order, once it is back; the deliveries log
// shows the failed attempts, and a ping reaches it once it is up.
func TestWebhookReceiverDown(t *testing.T) {
	p := runningProject(t, "events-down")
	expect(t, mlflowAPI(t, p, http.MethodPost, "registered-models/create", map[string]string{"name": "m"}), http.StatusOK)
	addr := freeAddr(t) // nothing listens there yet
	h := createWebhook(t, panel.URL, map[string]any{"url": "http://" + addr + "/", "projects": []string{p.ID}, "types": []string{"io.mlpanel.model.tags_set"}})
	proxy := project{MlflowURI: panel.URL + "/projects/" + p.ID + "/mlflow"}
	const n = 5
	for i := 0; i < n; i++ {
		expect(t, mlflowRaw(t, proxy, http.MethodPost, "/api/2.0/mlflow/registered-models/set-tag",
			strings.NewReader(fmt.Sprintf(`{"name": "m", "key": "step", "value": "%d"}`, i))), http.StatusOK)
	}
	// Wait until the first event failed at least twice.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ds []delivery
		call(t, http.MethodGet, "/webhooks/"+h.ID+"/deliveries", nil).JSON(t, &ds)
		if len(ds) >= 2 {
			if ds[0].Outcome != "retrying" || ds[0].StatusCode != 0 || ds[0].Error == "" {
				t.Fatalf("a failed attempt is logged as %+v", ds[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempts logged: %+v", ds)
		}
		time.Sleep(300 * time.Millisecond)
	}
	rcv := startReceiver(t, addr, h.Secret)
	for i := 0; i < n; i++ {
		ev := rcv.next(t, 30*time.Second)
		tags, _ := ev["data"].(map[string]any)["tags"].(map[string]any)
		if tags["step"] != fmt.Sprint(i) {
			t.Fatalf("delivery %d carries tags %v, want step=%d (in order)", i, tags, i)
		}
	}
	select {
	case ev := <-rcv.events:
		t.Fatalf("an event delivered twice or unasked for: %v", ev)
	case <-time.After(2 * time.Second):
	}
	var ping delivery
	r := call(t, http.MethodPost, "/webhooks/"+h.ID+"/test", nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &ping)
	if ping.Outcome != "delivered" || ping.StatusCode != http.StatusNoContent {
		t.Errorf("ping %+v", ping)
	}
	if ev := rcv.next(t, 10*time.Second); ev["type"] != "io.mlpanel.webhook.ping" {
		t.Errorf("the ping arrived as %v", ev["type"])
	}
}

// TestWebhookSurvivesRestart: a panel stopped while deliveries are
// failing delivers every event after it starts again (the durable
// consumer kept them), in order, once the receiver is up.
func TestWebhookSurvivesRestart(t *testing.T) {
	cfg := panelCfg
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.StopOnExit = true
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			s.Close()
		}
	}()
	addr := freeAddr(t)
	h := createWebhook(t, s.URL, map[string]any{"url": "http://" + addr + "/", "types": []string{"io.mlpanel.project.created"}})
	var names []string
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("restart-%d", i)
		expect(t, callAt(t, s.URL, "", http.MethodPost, "/projects", map[string]string{"name": name}), http.StatusCreated)
		names = append(names, name)
	}
	time.Sleep(2 * time.Second) // attempts fail meanwhile: nothing listens
	s.Close()
	stopped = true
	rcv := startReceiver(t, addr, h.Secret)
	s, err = stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	stopped = false
	for i, name := range names {
		ev := rcv.next(t, time.Minute)
		if d, _ := ev["data"].(map[string]any); d["name"] != name {
			t.Fatalf("delivery %d after the restart is %v, want project %s created", i, ev["data"], name)
		}
	}
	callAt(t, s.URL, "", http.MethodDelete, "/webhooks/"+h.ID, nil)
}

// TestWebhookInput: what a webhook may not be is a 400 naming the rule.
func TestWebhookInput(t *testing.T) {
	for _, c := range []struct {
		body map[string]any
		rule string
	}{
		{map[string]any{}, "url is required"},
		{map[string]any{"url": "not a url"}, "absolute http:// or https://"},
		{map[string]any{"url": "ftp://example.com/x"}, "absolute http:// or https://"},
		{map[string]any{"url": "http://169.254.169.254/latest/meta-data/"}, "metadata"},
		{map[string]any{"url": "http://metadata.google.internal/"}, "metadata"},
		{map[string]any{"url": "http://10.1.2.3/hook"}, "MLPANEL_WEBHOOK_ALLOW"},
		{map[string]any{"url": panel.URL + "/healthz"}, "own address"},
		{map[string]any{"url": "http://127.0.0.1:9/", "types": []string{"model.created"}}, "not an event type"},
		{map[string]any{"url": "http://127.0.0.1:9/", "types": "io.mlpanel.model.created"}, "malformed request body"},
	} {
		r := call(t, http.MethodPost, "/webhooks", c.body)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Message(), c.rule) {
			t.Errorf("%v: %d %s, want 400 naming %q", c.body, r.Status, r.Body, c.rule)
		}
	}
	r := call(t, http.MethodPost, "/webhooks", map[string]any{"url": "http://127.0.0.1:9/", "projects": []string{"no-such-project"}})
	expect(t, r, http.StatusNotFound)
	var all []webhook
	call(t, http.MethodGet, "/webhooks", nil).JSON(t, &all)
	for _, h := range all {
		if h.Secret != "" {
			t.Errorf("a listed webhook shows its secret: %+v", h)
		}
	}
	expect(t, call(t, http.MethodGet, "/webhooks/no-such-hook", nil), http.StatusNotFound)
}

// TestWebhookAuthz: owners manage their projects' webhooks, viewers and
// strangers do not; a stranger sees a webhook as one that does not exist.
func TestWebhookAuthz(t *testing.T) {
	// A panel with auth on at a port of its own (no project runs here, so
	// it needs neither the team panel's fixed address nor its public URL).
	cfg := panelCfg
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.StopOnExit = true
	cfg.Gateway.Addr = "127.0.0.1:0"
	cfg.Gateway.Auth = true
	cfg.Gateway.AdminToken = "mlp_admin-token-for-webhook-tests"
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); assertSpec(t, s) })
	tp := &teamPanel{Stack: s, admin: cfg.Gateway.AdminToken}
	alice := tp.newUser(t, "wh-alice", false)
	bob := tp.newUser(t, "wh-bob", false)
	carol := tp.newUser(t, "wh-carol", false)
	var p project
	r := tp.as(t, alice, http.MethodPost, "/projects", map[string]string{"name": "wh-owned"})
	expect(t, r, http.StatusCreated)
	r.JSON(t, &p)
	expect(t, tp.as(t, alice, http.MethodPut, "/projects/"+p.ID+"/members/wh-carol", map[string]string{"role": "viewer"}), http.StatusOK)

	body := map[string]any{"url": "http://127.0.0.1:9/", "project_id": p.ID}
	expect(t, tp.as(t, alice, http.MethodPost, "/webhooks", map[string]any{"url": "http://127.0.0.1:9/"}), http.StatusForbidden)
	r = tp.as(t, alice, http.MethodPost, "/webhooks", body)
	expect(t, r, http.StatusCreated)
	var h webhook
	r.JSON(t, &h)

	// Stranger: the project and the webhook do not exist for him.
	r = tp.as(t, bob, http.MethodPost, "/webhooks", body)
	expect(t, r, http.StatusNotFound)
	if want := `project "` + p.ID + `" not found`; !strings.Contains(r.Message(), want) {
		t.Errorf("a stranger's create: %s, want the answer for a missing project (%s)", r.Body, want)
	}
	hidden := tp.as(t, bob, http.MethodGet, "/webhooks/"+h.ID, nil)
	expect(t, hidden, http.StatusNotFound)
	expect(t, tp.as(t, bob, http.MethodGet, "/webhooks?project_id="+p.ID, nil), http.StatusNotFound)
	expect(t, tp.as(t, bob, http.MethodDelete, "/webhooks/"+h.ID, nil), http.StatusNotFound)
	expect(t, tp.as(t, bob, http.MethodGet, "/webhooks/"+h.ID+"/deliveries", nil), http.StatusNotFound)
	// Viewer: may see the project, may not manage its webhooks.
	expect(t, tp.as(t, carol, http.MethodPost, "/webhooks", body), http.StatusForbidden)
	expect(t, tp.as(t, carol, http.MethodGet, "/webhooks?project_id="+p.ID, nil), http.StatusForbidden)
	expect(t, tp.as(t, carol, http.MethodGet, "/webhooks/"+h.ID, nil), http.StatusNotFound)
	for _, tok := range []string{bob, carol} {
		r := tp.as(t, tok, http.MethodGet, "/webhooks", nil)
		expect(t, r, http.StatusOK)
		if r.Header.Get("X-Total-Count") != "0" {
			t.Errorf("a non-owner lists %s webhooks: %s", r.Header.Get("X-Total-Count"), r.Body)
		}
	}
	r = tp.as(t, alice, http.MethodGet, "/webhooks", nil)
	expect(t, r, http.StatusOK)
	if r.Header.Get("X-Total-Count") != "1" {
		t.Errorf("the owner lists %s webhooks", r.Header.Get("X-Total-Count"))
	}
	expect(t, tp.as(t, tp.admin, http.MethodGet, "/webhooks/"+h.ID, nil), http.StatusOK)
	expect(t, tp.as(t, alice, http.MethodDelete, "/webhooks/"+h.ID, nil), http.StatusOK)
	// Gone: the answer is byte for byte the one the stranger had.
	gone := tp.as(t, bob, http.MethodGet, "/webhooks/"+h.ID, nil)
	if gone.Status != hidden.Status || !bytes.Equal(gone.Body, hidden.Body) {
		t.Errorf("hidden %d %s, missing %d %s", hidden.Status, hidden.Body, gone.Status, gone.Body)
	}
}
