package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestRedirectsHideTheTrackingServer(t *testing.T) {
	internal, _ := url.Parse("http://127.0.0.1:45003/projects/4/mlflow")
	const prefix = "/projects/teamproj/mlflow"
	for loc, want := range map[string]string{
		// What MLflow answers a '//'-path with.
		"http://127.0.0.1:45003/projects/4/mlflow/api/2.0/mlflow/experiments/search?max_results=5": prefix + "/api/2.0/mlflow/experiments/search?max_results=5",
		"http://127.0.0.1:45003/projects/4/mlflow//api/x":                                          prefix + "//api/x",
		"/projects/4/mlflow/static-files/index.html#/runs":                                         prefix + "/static-files/index.html#/runs",
		"/projects/4/mlflow": prefix,
		"index.html":         "index.html",
		"http://127.0.0.1:45004/projects/4/mlflow/x": "", // another port
		"http://evil.example/projects/4/mlflow/x":    "",
		"//evil.example/projects/4/mlflow/x":         "",
		"/projects/5/mlflow/x":                       "", // another project's path
		"/projects/4/mlflowx":                        "",
		"/elsewhere":                                 "",
		"javascript:alert(1)":                        "",
	} {
		got, ok := mapInternalURL(loc, internal, prefix)
		if want == "" {
			if ok {
				t.Errorf("%q became %q, want it refused", loc, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("%q became %q (%v), want %q", loc, got, ok, want)
		}
	}

	resp := &http.Response{StatusCode: http.StatusPermanentRedirect, Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(`<a href="http://127.0.0.1:45003/projects/4/mlflow/x">redirecting</a>`))}
	resp.Header.Set("Location", "http://127.0.0.1:45003/projects/4/mlflow/x")
	resp.Header.Set("Content-Length", "70")
	if err := hideRedirect(resp, internal, prefix); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Location") != prefix+"/x" || len(body) != 0 || resp.Header.Get("Content-Length") != "" {
		t.Errorf("redirect passed on as Location %q, body %q", resp.Header.Get("Location"), body)
	}
	resp = &http.Response{StatusCode: http.StatusFound, Header: http.Header{"Location": {"http://10.0.0.7:5000/"}}, Body: http.NoBody}
	var fe *foreignRedirect
	if err := hideRedirect(resp, internal, prefix); !errors.As(err, &fe) {
		t.Errorf("a redirect to another host: %v, want it refused", err)
	}
}

// blockingLog holds the access log line of each proxied MLflow call
// until released, as a slow log sink would.
type blockingLog struct {
	slog.Handler
	release chan struct{}
}

func (h blockingLog) Handle(ctx context.Context, r slog.Record) error {
	proxied := false
	r.Attrs(func(a slog.Attr) bool {
		proxied = proxied || (a.Key == "route" && a.Value.String() == mlflowRoute)
		return !proxied
	})
	if r.Message == "http request" && proxied {
		<-h.release
	}
	return h.Handler.Handle(ctx, r)
}

func (h blockingLog) WithAttrs(as []slog.Attr) slog.Handler {
	return blockingLog{h.Handler.WithAttrs(as), h.release}
}

// A proxied MLflow answer reaches the client as soon as MLflow gave it,
// not once the gateway has also written its access log, metrics and
// audit: those cost every call of the stock client time for nothing.
func TestProxiedAnswerDoesNotWaitForTheAccessLog(t *testing.T) {
	w := newAuthWorld(t)
	release := make(chan struct{})
	var once sync.Once
	w.g.log = slog.New(blockingLog{slog.NewJSONHandler(io.Discard, nil), release})
	w.e = w.g.handler(w.g.routes())
	p := w.project(w.admin, "quick")
	w.runningUpstream(p, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(`{"experiment": {"experiment_id": "0"}}`)) // with a Content-Length, as MLflow's answers
	}))
	gw := httptest.NewServer(w.e)
	t.Cleanup(gw.Close)
	// Cleanups run last first: the held line goes before the server
	// waits for its handlers.
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	req, _ := http.NewRequest(http.MethodGet, gw.URL+"/projects/quick/mlflow/api/2.0/mlflow/experiments/get?experiment_id=0", nil)
	req.Header.Set("Authorization", "Bearer "+w.admin)
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("the proxied answer waited for the access log: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"experiment_id": "0"`) {
		t.Fatalf("proxied answer %d %q (%v) while the access log is held", resp.StatusCode, body, err)
	}
	once.Do(func() { close(release) })
}

// A proxied answer says how long the tracking server took (Server-Timing),
// so a client can tell the gateway's time from MLflow's: the entry covers
// the server's own time and not what the client waited in total.
func TestProxiedAnswerTellsTheTrackingServersTime(t *testing.T) {
	w := newAuthWorld(t)
	p := w.project(w.admin, "timed")
	const serverTook = 30 * time.Millisecond
	w.runningUpstream(p, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		time.Sleep(serverTook)
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(`{"experiments": []}`))
	}))
	gw := httptest.NewServer(w.e)
	t.Cleanup(gw.Close)

	req, _ := http.NewRequest(http.MethodGet, gw.URL+"/projects/timed/mlflow/api/2.0/mlflow/experiments/search", nil)
	req.Header.Set("Authorization", "Bearer "+w.admin)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	total := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("proxied search: %d", resp.StatusCode)
	}
	timing := resp.Header.Get("Server-Timing")
	name, dur, ok := strings.Cut(timing, ";dur=")
	if !ok || name != `tracking;desc="tracking server"` {
		t.Fatalf("Server-Timing %q: want the tracking server's entry with a duration", timing)
	}
	ms, err := strconv.ParseFloat(dur, 64)
	if err != nil {
		t.Fatalf("Server-Timing duration %q: %v", dur, err)
	}
	took := time.Duration(ms * float64(time.Millisecond))
	if took < serverTook || took > total {
		t.Fatalf("Server-Timing says the tracking server took %v; it slept %v and the whole call took %v", took, serverTook, total)
	}
}

// heldPublish holds every JetStream publish until release is closed.
type heldPublish struct {
	jetstream.JetStream
	release chan struct{}
}

func (h heldPublish) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	<-h.release
	return h.JetStream.PublishMsg(ctx, m, opts...)
}

// A write through the MLflow proxy is answered only once its audit entry
// is durable in the queue, as every other write is: the proxy sends its
// answers early (sendNow), but not before the entry, so a gateway killed
// right after answering loses none.
func TestProxiedWriteIsAnsweredAfterItsAuditEntry(t *testing.T) {
	w := newAuthWorld(t)
	if w.g.audit == nil {
		t.Fatal("the gateway has no audit queue")
	}
	p := w.project(w.admin, "audited")
	w.runningUpstream(p, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(`{}`)) // as MLflow answers runs/log-metric
	}))
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	w.g.audit.js = heldPublish{w.g.audit.js, release}
	gw := httptest.NewServer(w.e)
	t.Cleanup(gw.Close)
	t.Cleanup(free) // before the server waits for its handlers

	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, gw.URL+"/projects/audited/mlflow/api/2.0/mlflow/runs/log-metric",
			strings.NewReader(`{"run_id": "0123456789abcdef0123456789abcdef", "key": "m", "value": 1, "timestamp": 1700000000000}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+w.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- -1
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	select {
	case status := <-answered:
		t.Fatalf("the proxied write was answered (%d) while its audit entry was not yet in the queue", status)
	case <-time.After(500 * time.Millisecond):
	}
	free()
	select {
	case status := <-answered:
		if status != http.StatusOK {
			t.Fatalf("the proxied write answered %d once its entry was queued; want 200", status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after the audit entry was queued")
	}
	// The entry recorded ahead of the answer gets the answer's status.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var entries []struct {
			Path   string
			Status int
		}
		_ = json.Unmarshal([]byte(w.must(w.do(w.admin, "GET", "/audit?project_id=audited", nil), 200).body), &entries)
		if len(entries) == 1 && strings.HasSuffix(entries[0].Path, "/runs/log-metric") && entries[0].Status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit entries of the write: %+v; want one, with status 200", entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With an audit journal, a proxied write waits for its entry's append to
// the journal, not for the queue: the answer comes while the queue holds
// every publish, the entry is in the journal by then, and it reaches the
// audit log once the queue takes it.
func TestProxiedWriteWithAJournalWaitsOnlyForTheJournal(t *testing.T) {
	w := newAuthWorld(t)
	p := w.project(w.admin, "journaled")
	w.runningUpstream(p, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(`{}`))
	}))
	dir := t.TempDir()
	j, err := openAuditJournal(context.Background(), dir, w.g.recordAudit, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	w.g.journal = j
	t.Cleanup(func() { j.close(context.Background()) })
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	w.g.audit.js = heldPublish{w.g.audit.js, release}
	t.Cleanup(free) // before the journal's close waits for its worker
	gw := httptest.NewServer(w.e)
	t.Cleanup(gw.Close)

	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/projects/journaled/mlflow/api/2.0/mlflow/runs/log-metric",
		strings.NewReader(`{"run_id": "0123456789abcdef0123456789abcdef", "key": "m", "value": 1, "timestamp": 1700000000000}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+w.admin)
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("the write waited for the queue although its entry was journaled: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("proxied write: %d", resp.StatusCode)
	}
	var journaled string
	for _, s := range segmentFiles(t, dir) {
		b, _ := os.ReadFile(s)
		journaled += string(b)
	}
	if !strings.Contains(journaled, `/projects/journaled/mlflow/api/2.0/mlflow/runs/log-metric`) || !strings.Contains(journaled, `"status":200`) {
		t.Fatalf("the answered write is not in the journal: %q", journaled)
	}
	free()
	var entries []struct {
		Path   string
		Status int
	}
	_ = json.Unmarshal([]byte(w.must(w.do(w.admin, "GET", "/audit?project_id=journaled", nil), 200).body), &entries)
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Path, "/runs/log-metric") || entries[0].Status != http.StatusOK {
		t.Fatalf("audit entries of the write: %+v; want one, with status 200", entries)
	}
}
