package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/mlmodel"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
)

// Registry events of writes through the MLflow proxy. The writes are
// found by MLflow's own handler names in the generated route table
// (mlflow_routes_gen.go), so every path MLflow serves them at (/api,
// /ajax-api the UI uses, any prefix a new MLflow adds) is covered
// without a hand-kept list of paths. Events are published after MLflow
// answered 2xx and before the client gets that answer; a refused write
// publishes nothing. Publishing failures are logged: MLflow holds the
// truth and the write stands.

const eventSourceGateway = "mlpanel/gateway"

// registryHandlers maps MLflow's handler of a write to the change it
// makes (TestRegistryHandlersAreMLflowRoutes keeps it honest against the
// route table after an MLflow upgrade).
var registryHandlers = map[string]string{
	"_create_registered_model":       events.ModelCreated,
	"_rename_registered_model":       events.ModelRenamed,
	"_delete_registered_model":       events.ModelDeleted,
	"_create_model_version":          events.ModelVersionCreated,
	"_set_registered_model_alias":    events.ModelAliasSet,
	"_delete_registered_model_alias": events.ModelAliasDeleted,
	"_set_registered_model_tag":      events.ModelTagsSet,
	"_set_model_version_tag":         events.ModelTagsSet,
	"_delete_registered_model_tag":   events.ModelTagsDeleted,
	"_delete_model_version_tag":      events.ModelTagsDeleted,
	// MLflow drops the aliases of a version it deletes: alias_deleted each.
	"_delete_model_version": events.ModelAliasDeleted,
	"_update_run":           events.RunFinished,
}

// mlflowEventHandler is MLflow's handler of the write route method+path
// matches when that write makes events, else "".
func mlflowEventHandler(method, path string) string {
	eventMatchersOnce.Do(func() {
		mlflowMatchersOnce.Do(compileMLflowRoutes)
		eventMatchers = map[string][]mlflowRouteMatcher{}
		for method, ms := range mlflowMatchers {
			for _, m := range ms {
				if _, ok := registryHandlers[m.spec.handler]; ok {
					eventMatchers[method] = append(eventMatchers[method], m)
				}
			}
		}
	})
	ms := eventMatchers[method]
	if len(ms) == 0 || !cleanRoutePath(path) {
		return ""
	}
	for _, m := range ms {
		if strings.HasPrefix(path, m.prefix) && m.re.MatchString(path) {
			return m.spec.handler
		}
	}
	return ""
}

// eventMatchers are the routes of registryHandlers, by method: most
// proxied calls are reads and logging, which match none.
var (
	eventMatchersOnce sync.Once
	eventMatchers     map[string][]mlflowRouteMatcher
)

// preReadClient reads a project's MLflow before a write, to learn what
// the write changes (where an alias pointed, a tag's old value).
var preReadClient = &http.Client{Timeout: 10 * time.Second, Transport: sockhttp.Transport(nil)}

// serveMLflow proxies one call, publishing the events of a registry or
// run write it makes.
func (g *Gateway) serveMLflow(c *gin.Context, rp *httputil.ReverseProxy, req *http.Request, projectID string, base *url.URL) {
	handler := mlflowEventHandler(req.Method, c.Param("path"))
	if handler == "" || g.publisher() == nil {
		rp.ServeHTTP(c.Writer, req)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, g.cfg.MaxBody+1))
	if err != nil {
		writeError(c, events.Errorf(http.StatusBadRequest, "reading the request body: %v", err))
		return
	}
	if int64(len(body)) > g.cfg.MaxBody {
		// Larger than any registry write MLflow takes: MLflow refuses it.
		req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), req.Body))
		rp.ServeHTTP(c.Writer, req)
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	w := registryWrite{g: g, project: projectID, base: base, handler: handler, msg: writeMessage(req.URL.Query(), body)}
	if handler == "_update_run" && !events.TerminalRunStatus(w.msg["status"]) {
		rp.ServeHTTP(c.Writer, req) // renaming a run, or one still running: no event
		return
	}
	w.before(req.Context())
	rec := &recorder{header: http.Header{}}
	rp.ServeHTTP(rec, req)
	if rec.status >= 200 && rec.status < 300 {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), 10*time.Second)
		w.publish(ctx, rec.body.Bytes())
		cancel()
	}
	rec.copyTo(c.Writer)
}

// publisher publishes the gateway's events; nil without NATS.
func (g *Gateway) publisher() *events.Publisher {
	g.pubOnce.Do(func() {
		if g.nc == nil {
			return
		}
		js, err := jetstream.New(g.nc)
		if err != nil {
			g.log.Error("opening JetStream for registry events", "err", err)
			return
		}
		g.pub = events.NewPublisher(js, eventSourceGateway)
	})
	return g.pub
}

// writeMessage is the write's request message: MLflow reads a JSON body,
// or query parameters for DELETE calls that send none. Values are kept
// as text (numbers as written).
func writeMessage(q url.Values, body []byte) map[string]string {
	out := map[string]string{}
	for k, v := range q {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) != nil {
		return out
	}
	for k, v := range raw {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
		} else if len(v) > 0 && v[0] != '{' && v[0] != '[' && string(v) != "null" {
			out[k] = string(v)
		}
	}
	return out
}

// registryWrite is one write on its way through the proxy.
type registryWrite struct {
	g       *Gateway
	project string
	base    *url.URL
	handler string
	msg     map[string]string

	seq     uint64            // the stream's last event of this model or run
	known   bool              // the state before the write was read
	created int64             // the model's creation time (deletes)
	aliases map[string]string // alias -> version
	tags    map[string]string
	status  string // the run's status
}

type mlflowTag struct{ Key, Value string }

func tagMap(ts []mlflowTag) map[string]string {
	m := map[string]string{}
	for _, t := range ts {
		m[t.Key] = t.Value
	}
	return m
}

// before reads what the write is about to change. The stream's last
// sequence is read first: a concurrent retry either reads the same
// sequence (same event id) or sees the first write done (a no-op).
func (w *registryWrite) before(ctx context.Context) {
	name := w.msg["name"]
	if w.handler == "_update_run" {
		w.seq, _ = w.g.pub.LastSequence(ctx, events.RunFilter(w.project, runIDOf(w.msg)))
		var r struct {
			Run struct {
				Info struct{ Status string } `json:"info"`
			} `json:"run"`
		}
		w.known = w.get(ctx, "runs/get", url.Values{"run_id": {runIDOf(w.msg)}}, &r) == nil
		w.status = r.Run.Info.Status
		return
	}
	w.seq, _ = w.g.pub.LastSequence(ctx, events.ModelFilter(w.project, name))
	switch w.handler {
	case "_delete_registered_model", "_delete_model_version", "_set_registered_model_alias", "_delete_registered_model_alias",
		"_set_registered_model_tag", "_delete_registered_model_tag":
		var m struct {
			RegisteredModel struct {
				CreationTimestamp flexInt `json:"creation_timestamp"`
				Aliases           []struct{ Alias, Version string }
				Tags              []mlflowTag
			} `json:"registered_model"`
		}
		if w.get(ctx, "registered-models/get", url.Values{"name": {name}}, &m) != nil {
			return
		}
		w.known, w.created = true, int64(m.RegisteredModel.CreationTimestamp)
		w.aliases = map[string]string{}
		for _, a := range m.RegisteredModel.Aliases {
			w.aliases[a.Alias] = a.Version
		}
		w.tags = tagMap(m.RegisteredModel.Tags)
	case "_set_model_version_tag", "_delete_model_version_tag":
		var v struct {
			ModelVersion struct{ Tags []mlflowTag } `json:"model_version"`
		}
		if w.get(ctx, "model-versions/get", url.Values{"name": {name}, "version": {w.msg["version"]}}, &v) == nil {
			w.known, w.tags = true, tagMap(v.ModelVersion.Tags)
		}
	}
}

func runIDOf(msg map[string]string) string {
	if id := msg["run_id"]; id != "" {
		return id
	}
	return msg["run_uuid"]
}

// get calls a read of the project's MLflow REST API.
func (w *registryWrite) get(ctx context.Context, op string, q url.Values, out any) error {
	u := *w.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/2.0/mlflow/" + op
	u.RawPath, u.RawQuery = "", q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := preReadClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("MLflow %s answered %d", op, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// publish publishes what the confirmed write changed; a write that
// changed nothing (an alias set where it already pointed, a tag set to
// the value it had, a finished run finished again) publishes nothing,
// which is also what keeps a retried write to one event.
func (w *registryWrite) publish(ctx context.Context, answer []byte) {
	seq := fmt.Sprint(w.seq)
	name, m := w.msg["name"], w.msg
	d := events.ModelData{ProjectID: w.project, Name: name}
	var evs []events.Event
	add := func(ev events.Event, err error) {
		if err != nil {
			w.g.log.Error("building a registry event", "handler", w.handler, "err", err)
			return
		}
		evs = append(evs, ev)
	}
	switch w.handler {
	case "_create_registered_model":
		var a struct {
			RegisteredModel struct {
				Name              string
				CreationTimestamp flexInt `json:"creation_timestamp"`
			} `json:"registered_model"`
		}
		_ = json.Unmarshal(answer, &a)
		if a.RegisteredModel.Name != "" {
			d.Name = a.RegisteredModel.Name
		}
		add(events.NewModelEvent(eventSourceGateway, d, events.ModelCreated, fmt.Sprint(a.RegisteredModel.CreationTimestamp), seq))
	case "_rename_registered_model":
		d.PreviousName, d.Name = name, m["new_name"]
		add(events.NewModelEvent(eventSourceGateway, d, events.ModelRenamed, m["new_name"], seq))
	case "_delete_registered_model":
		add(events.NewModelEvent(eventSourceGateway, d, events.ModelDeleted, fmt.Sprint(w.created), seq))
	case "_create_model_version":
		var a struct {
			ModelVersion versionAnswer `json:"model_version"`
		}
		if json.Unmarshal(answer, &a) != nil || a.ModelVersion.Version == "" {
			w.g.log.Error("MLflow's answer to a version create names no version; no event", "model", name)
			return
		}
		v := a.ModelVersion
		d.Name, d.Version, d.Source, d.RunID, d.Status = v.Name, v.Version, v.Source, v.RunID, v.Status
		d.Signature = w.signature(ctx, v.Name, v.Version)
		id := []string{v.Version, fmt.Sprint(v.CreationTimestamp)}
		add(events.NewModelEvent(eventSourceGateway, d, events.ModelVersionCreated, id...))
		if v.Status == "READY" {
			add(events.NewModelEvent(eventSourceGateway, d, events.ModelVersionReady, id...))
		} else {
			go w.awaitReady(d, id)
		}
	case "_set_registered_model_alias":
		d.Alias, d.Version = m["alias"], m["version"]
		prev := w.aliases[d.Alias]
		if w.known && prev == d.Version {
			return // it pointed there already
		}
		d.PreviousVersion = prev
		add(events.NewModelEvent(eventSourceGateway, d, events.ModelAliasSet, d.Alias, d.Version, prev, seq))
	case "_delete_registered_model_alias":
		d.Alias = m["alias"]
		prev, had := w.aliases[d.Alias]
		if w.known && !had {
			return // there was no such alias
		}
		d.PreviousVersion = prev
		add(events.NewModelEvent(eventSourceGateway, d, events.ModelAliasDeleted, d.Alias, prev, seq))
	case "_delete_model_version":
		var gone []string
		for a, v := range w.aliases {
			if v == m["version"] {
				gone = append(gone, a)
			}
		}
		sort.Strings(gone)
		for _, a := range gone {
			d := events.ModelData{ProjectID: w.project, Name: name, Alias: a, PreviousVersion: m["version"]}
			add(events.NewModelEvent(eventSourceGateway, d, events.ModelAliasDeleted, a, m["version"], seq))
		}
	case "_set_registered_model_tag", "_set_model_version_tag":
		key, val := m["key"], m["value"]
		if old, had := w.tags[key]; w.known && had && old == val {
			return
		}
		d.Target, d.Version = targetOf(w.handler, m), m["version"]
		d.Tags = map[string]string{key: val}
		add(events.NewModelEvent(eventSourceGateway, d, events.ModelTagsSet, d.Target, d.Version, key, val, seq))
	case "_delete_registered_model_tag", "_delete_model_version_tag":
		key := m["key"]
		if _, had := w.tags[key]; w.known && !had {
			return
		}
		d.Target, d.Version = targetOf(w.handler, m), m["version"]
		d.Keys = []string{key}
		add(events.NewModelEvent(eventSourceGateway, d, events.ModelTagsDeleted, d.Target, d.Version, key, seq))
	case "_update_run":
		status := m["status"]
		if !events.TerminalRunStatus(status) || (w.known && w.status == status) {
			return
		}
		var a struct {
			RunInfo struct {
				ExperimentID string  `json:"experiment_id"`
				RunName      string  `json:"run_name"`
				EndTime      flexInt `json:"end_time"`
			} `json:"run_info"`
		}
		_ = json.Unmarshal(answer, &a)
		run := runIDOf(m)
		rd := events.RunData{ProjectID: w.project, Name: run, RunID: run, ExperimentID: a.RunInfo.ExperimentID,
			RunName: a.RunInfo.RunName, Status: status, EndTime: int64(a.RunInfo.EndTime)}
		add(events.NewRunEvent(eventSourceGateway, rd, events.RunFinished, status, fmt.Sprint(rd.EndTime), seq))
	}
	for _, ev := range evs {
		if err := w.g.pub.PublishEvent(ctx, ev); err != nil {
			w.g.log.Error("publishing a registry event", "type", ev.Type, "project", w.project, "err", err)
		}
	}
}

// signature is the signature of a version MLflow just created, for its
// version_created event: nil when the model has none, or when its MLmodel
// cannot be read within mlmodel.EventWait (logged; the client's write
// waits no longer than that and stands either way).
func (w *registryWrite) signature(ctx context.Context, model, version string) any {
	ctx, cancel := context.WithTimeout(ctx, mlmodel.EventWait)
	defer cancel()
	sig, err := mlmodel.Reader{Client: preReadClient}.Signature(ctx, w.base.String(), model, version)
	if err != nil {
		w.g.log.Warn("reading the signature of a new model version; its version_created event goes without it",
			"project", w.project, "model", model, "version", version, "err", err)
		return nil
	}
	if sig == nil {
		return nil // a nil *Signature in the event's any would not be omitted
	}
	return sig
}

func targetOf(handler string, m map[string]string) string {
	if strings.Contains(handler, "model_version") {
		return "version"
	}
	return "model"
}

// versionAnswer is the part of MLflow's model version the events carry.
type versionAnswer struct {
	Name              string  `json:"name"`
	Version           string  `json:"version"`
	Source            string  `json:"source"`
	RunID             string  `json:"run_id"`
	Status            string  `json:"status"`
	CreationTimestamp flexInt `json:"creation_timestamp"`
}

// awaitReady publishes version_ready once a version MLflow registers
// asynchronously (PENDING_REGISTRATION, e.g. a registry plugin that
// copies files) is READY; it gives up after readyWait.
func (w *registryWrite) awaitReady(d events.ModelData, id []string) {
	ctx, cancel := context.WithTimeout(context.Background(), readyWait)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			w.g.log.Warn("model version did not become READY; no version_ready event", "model", d.Name, "version", d.Version)
			return
		case <-time.After(time.Second):
		}
		var v struct {
			ModelVersion versionAnswer `json:"model_version"`
		}
		if w.get(ctx, "model-versions/get", url.Values{"name": {d.Name}, "version": {d.Version}}, &v) != nil {
			continue
		}
		switch v.ModelVersion.Status {
		case "READY":
			d.Status = "READY"
			ev, err := events.NewModelEvent(eventSourceGateway, d, events.ModelVersionReady, id...)
			if err == nil {
				err = w.g.pub.PublishEvent(ctx, ev)
			}
			if err != nil {
				w.g.log.Error("publishing version_ready", "model", d.Name, "version", d.Version, "err", err)
			}
			return
		case "FAILED_REGISTRATION":
			return
		}
	}
}

const readyWait = 10 * time.Minute

// recorder holds a small answer (a registry write's) until its events
// are published, so a client that sees the answer can find the event.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Flush() {}

func (r *recorder) copyTo(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	if r.status == 0 {
		r.status = http.StatusOK
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body.Bytes())
}

// flexInt is an MLflow int64 field, a JSON number or a string of digits.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(bytes.Trim(b, `"`), &n); err != nil {
		return nil // unknown shape: leave it zero, it only names the write
	}
	v, _ := n.Int64()
	*f = flexInt(v)
	return nil
}
