package webhooks

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/embedded"
)

// The dispatcher against embedded NATS (JetStream) and FerretDB: events
// reach a receiver that was failing in their order, each once, with a
// valid signature; an event that failed for longer than RetryFor is
// given up (logged) and the next one still goes out.
func TestDispatcherOrderRetryAndGiveUp(t *testing.T) {
	ns, err := embedded.StartNATS(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	js, err := events.OpenStream(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithTimeout(ctx, time.Minute)
	defer fcancel()
	f, err := embedded.StartFerretDB(fctx, t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(f.URI()))
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()); f.Close() })
	store, err := NewStore(ctx, client.Database("mlpanel"))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := LoadKey("", t.TempDir())
	sealer, _ := NewSealer(key)

	var failing atomic.Bool
	var mu sync.Mutex
	var got []string
	secret := NewSecret()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var sec int64
		for _, c := range r.Header.Get("webhook-timestamp") {
			sec = sec*10 + int64(c-'0')
		}
		want, _ := Sign(secret, r.Header.Get("webhook-id"), time.Unix(sec, 0), body)
		if r.Header.Get("webhook-signature") != want {
			t.Errorf("bad signature %q, want %q", r.Header.Get("webhook-signature"), want)
		}
		ev, err := events.Decode(body)
		if err != nil {
			t.Errorf("not an event: %s", body)
		}
		mu.Lock()
		got = append(got, ev.EntityID)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	guard := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	d := NewDispatcher(js, store, sealer, guard, Config{RetryFor: 3 * time.Second, MaxBackoff: 300 * time.Millisecond, Timeout: 2 * time.Second},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	go d.Run(ctx)
	h := Webhook{ID: NewID(), URL: srv.URL, Types: []string{"io.mlpanel.project.created"}, Projects: []string{}, CreatedAt: time.Now()}
	h.Sealed = sealer.Seal(h.ID, secret)
	if err := store.Create(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := d.Subscribe(ctx, h); err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(js, "test")
	publish := func(id, change string) {
		t.Helper()
		if _, err := pub.Publish(ctx, "project", id, change, map[string]string{"id": id}); err != nil {
			t.Fatal(err)
		}
	}
	waitGot := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			out := append([]string(nil), got...)
			mu.Unlock()
			if len(out) >= n {
				return out
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("the receiver got %v, want %d events", got, n)
		return nil
	}

	// In order after a failing stretch; other types are not delivered.
	failing.Store(true)
	for _, id := range []string{"1", "2", "3"} {
		publish(id, "created")
		publish(id, "running")
	}
	time.Sleep(1200 * time.Millisecond)
	failing.Store(false)
	if out := waitGot(3); len(out) != 3 || out[0] != "1" || out[1] != "2" || out[2] != "3" {
		t.Fatalf("delivered %v, want 1 2 3 in order", out)
	}

	// Given up after RetryFor; the next event still goes out.
	failing.Store(true)
	publish("4", "created")
	deadline := time.Now().Add(15 * time.Second)
	for {
		ds, _, err := store.Deliveries(ctx, h.ID, 0, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].Outcome == OutcomeGaveUp {
			if ds[0].StatusCode != http.StatusServiceUnavailable || ds[0].Attempt < 2 {
				t.Errorf("the last attempt %+v", ds[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event 4 was never given up: %+v", ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
	failing.Store(false)
	publish("5", "created")
	if out := waitGot(4); out[3] != "5" {
		t.Fatalf("after giving up 4 the receiver got %v, want 5 next", out)
	}
	_, n, _ := store.Deliveries(ctx, h.ID, 0, 0, true)
	if n < 6 {
		t.Errorf("%d attempts logged, want the failures too", n)
	}
}
