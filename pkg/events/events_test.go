package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/embedded"
)

func TestSubjectKeepsTheHierarchy(t *testing.T) {
	cases := map[string][3]string{
		"mlpanel.events.deployment.7.running": {"deployment", "7", "running"},
		"mlpanel.events.project.a_b.created":  {"project", "a.b", "created"},
		"mlpanel.events.project._.x_y":        {"project", "", "x>y"},
		"mlpanel.events.model.m_1_.deleted":   {"model", "m 1*", "deleted"},
	}
	for want, in := range cases {
		if got := events.Subject(in[0], in[1], in[2]); got != want {
			t.Errorf("Subject(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPageWindowAndSort(t *testing.T) {
	items := []int{5, 3, 9, 1, 7}
	less := func(a, b int) bool { return a < b }
	got := events.Page(append([]int(nil), items...), events.ListParams{Start: 1, End: 3}, less)
	if got.Total != 5 || len(got.Items) != 2 || got.Items[0] != 3 || got.Items[1] != 5 {
		t.Fatalf("ASC window [1,3) = %+v", got)
	}
	got = events.Page(append([]int(nil), items...), events.ListParams{Order: "DESC"}, less)
	if got.Items[0] != 9 || got.Items[4] != 1 {
		t.Fatalf("DESC = %+v", got.Items)
	}
	got = events.Page(append([]int(nil), items...), events.ListParams{Start: 10}, less)
	if got.Total != 5 || got.Items == nil || len(got.Items) != 0 {
		t.Fatalf("start past the end = %+v; want an empty, non-nil page with the true total", got)
	}
}

func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	srv, err := embedded.StartNATS(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestRequestReply: statuses and messages survive the trip, malformed
// requests are 400s, and a missing service is a 503 not a hang.
func TestRequestReply(t *testing.T) {
	nc := startNATS(t)
	svc, err := micro.AddService(nc, micro.Config{Name: "echo", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	type in struct {
		Name string `json:"name"`
	}
	err = svc.AddEndpoint("greet", events.Handler(time.Second, func(ctx context.Context, r in) (any, error) {
		if r.Name == "" {
			return nil, events.Errorf(http.StatusBadRequest, "name is required")
		}
		if r.Name == "ghost" {
			return nil, events.Errorf(http.StatusNotFound, "no %s here", r.Name)
		}
		return map[string]string{"hello": r.Name}, nil
	}), micro.WithEndpointSubject("test.greet"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	var out map[string]string
	if err := events.Call(ctx, nc, "test.greet", in{Name: "ada"}, &out); err != nil || out["hello"] != "ada" {
		t.Fatalf("Call = %v, %v", out, err)
	}
	for name, want := range map[string]int{"": 400, "ghost": 404} {
		err := events.Call(ctx, nc, "test.greet", in{Name: name}, &out)
		if events.StatusOf(err) != want {
			t.Errorf("Call(%q) error %v has status %d, want %d", name, err, events.StatusOf(err), want)
		}
	}
	msg, err := nc.Request("test.greet", []byte("{not json"), time.Second)
	if err != nil || msg.Header.Get(micro.ErrorCodeHeader) != "400" {
		t.Fatalf("malformed request: %v %v", msg, err)
	}
	err = events.Call(ctx, nc, "test.nobody", in{}, nil)
	if events.StatusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("missing service gave %v (status %d), want 503", err, events.StatusOf(err))
	}
}

// TestPublishDeduplicates: a retried publish of the same event is stored
// once, and the stored body is a CloudEvent carrying the entity.
func TestPublishDeduplicates(t *testing.T) {
	nc := startNATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream, err := events.EnsureStream(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.EnsureStream(ctx, js); err != nil {
		t.Fatalf("ensuring the stream twice: %v", err)
	}
	pub := events.NewPublisher(js, "mlpanel/test")
	ev, err := events.New("mlpanel/test", "deployment", "7", "running", map[string]string{"id": "7", "status": "running"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := pub.PublishEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages after 3 publishes of one event, want 1", info.State.Msgs)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, "mlpanel.events.deployment.7.running")
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Decode(raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]string
	_ = json.Unmarshal(got.Data, &data)
	if got.ID != ev.ID || got.Type != "io.mlpanel.deployment.running" || got.Subject != "deployment/7" || data["status"] != "running" || got.Source != "mlpanel/test" {
		t.Fatalf("stored event %+v data %v", got, data)
	}
	// Subscribers key their caches by entity id: the decoded event has it.
	if got.Entity != "deployment" || got.EntityID != "7" || got.Change != "running" || got.NATSSubject() != "mlpanel.events.deployment.7.running" {
		t.Fatalf("decoded event names entity %q id %q change %q", got.Entity, got.EntityID, got.Change)
	}
	if _, err := events.Decode([]byte(`{"specversion":"0.3"}`)); err == nil {
		t.Fatal("Decode accepted specversion 0.3")
	}
}

// TestCallIdempotentSurvivesALostReply: a request delivered to an
// instance that never answers (it died) is sent again and answered by
// another; plain Call does not resend it.
func TestCallIdempotentSurvivesALostReply(t *testing.T) {
	nc := startNATS(t)
	var calls atomic.Int32
	sub, err := nc.QueueSubscribe("test.read", "q", func(m *nats.Msg) {
		if calls.Add(1) == 1 {
			return // the instance that got it "died" before answering
		}
		_ = m.Respond([]byte(`{"ok": true}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out struct{ OK bool }
	if err := events.CallIdempotent(ctx, nc, "test.read", struct{}{}, &out); err != nil || !out.OK {
		t.Fatalf("CallIdempotent = %+v, %v; want the second attempt's answer", out, err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("the request was delivered %d times, want 2", n)
	}

	calls.Store(0)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	err = events.Call(ctx2, nc, "test.read", struct{}{}, &out)
	if events.StatusOf(err) != http.StatusGatewayTimeout || calls.Load() != 1 {
		t.Fatalf("Call on a lost reply: %v after %d deliveries; want a 504 after exactly one (writes are never resent)", err, calls.Load())
	}
}

// slowService registers test.slow, whose handler takes hold before it
// answers and counts its deliveries; seen reports each handler's deadline.
func slowService(t *testing.T, nc *nats.Conn, own, hold time.Duration, seen chan<- time.Duration) *atomic.Int32 {
	t.Helper()
	var calls atomic.Int32
	svc, err := micro.AddService(nc, micro.Config{Name: "slow", Version: "0.0.1", QueueGroup: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	err = svc.AddEndpoint("slow", events.Handler(own, func(ctx context.Context, _ struct{}) (any, error) {
		calls.Add(1)
		if d, ok := ctx.Deadline(); ok && seen != nil {
			seen <- time.Until(d)
		}
		select {
		case <-time.After(hold):
			return map[string]bool{"ok": true}, nil
		case <-ctx.Done():
			return nil, events.Errorf(http.StatusGatewayTimeout, "gave up")
		}
	}), micro.WithEndpointSubject("test.slow"))
	if err != nil {
		t.Fatal(err)
	}
	return &calls
}

// TestCallIdempotentNeverResendsASlowRead: a read that a service took is
// waited for, not sent again because it is slow (each resend would run
// the same heavy query once more).
func TestCallIdempotentNeverResendsASlowRead(t *testing.T) {
	nc := startNATS(t)
	calls := slowService(t, nc, time.Minute, 7*time.Second, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out struct{ OK bool }
	if err := events.CallIdempotent(ctx, nc, "test.slow", struct{}{}, &out); err != nil || !out.OK {
		t.Fatalf("CallIdempotent = %+v, %v; want the slow answer", out, err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("a slow read ran %d times, want once", n)
	}
	// No responders at all is still a quick 503, not an ack wait.
	err := events.CallIdempotent(ctx, nc, "test.nobody", struct{}{}, nil)
	if events.StatusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("CallIdempotent to nobody = %v, want 503", err)
	}
}

// TestHandlerWorksWithinTheCallersDeadline: the service's deadline is the
// caller's remaining time less a margin when that is shorter than its
// own, so it gives up (cancelling what it waits for) before the caller
// does and answers in time; and one slow request does not hold up the
// next one on the same endpoint.
func TestHandlerWorksWithinTheCallersDeadline(t *testing.T) {
	nc := startNATS(t)
	seen := make(chan time.Duration, 4)
	slowService(t, nc, time.Minute, time.Hour, seen)
	for name, call := range map[string]func(context.Context, *nats.Conn, string, any, any) error{
		"Call": events.Call, "CallIdempotent": events.CallIdempotent,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := call(ctx, nc, "test.slow", struct{}{}, nil)
		cancel()
		if d := <-seen; d <= 0 || d >= 3*time.Second {
			t.Errorf("%s: the handler's deadline was %s away; want below the caller's 3s", name, d)
		}
		// The service's own 504 arrives, not the caller's timeout.
		var e *events.Error
		if !errors.As(err, &e) || e.Message != "gave up" {
			t.Errorf("%s: got %v; want the service's answer before the caller's deadline", name, err)
		}
	}

	// Two requests on one endpoint at once: both run together.
	var both sync.WaitGroup
	both.Add(2)
	svc, err := micro.AddService(nc, micro.Config{Name: "pair", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	_ = svc.AddEndpoint("pair", events.Handler(5*time.Second, func(ctx context.Context, _ struct{}) (any, error) {
		both.Done()
		done := make(chan struct{})
		go func() { both.Wait(); close(done) }()
		select {
		case <-done:
			return "ok", nil
		case <-ctx.Done():
			return nil, events.Errorf(http.StatusGatewayTimeout, "the other request never ran beside this one")
		}
	}), micro.WithEndpointSubject("test.pair"))
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs <- events.Call(ctx, nc, "test.pair", struct{}{}, nil)
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent requests on one endpoint: %v", err)
		}
	}
}

// TestReadIsCancelledWhenTheCallerGoes: a read whose caller stops waiting
// (its HTTP client hung up) ends in the service too, instead of holding
// MLflow until the deadline.
func TestReadIsCancelledWhenTheCallerGoes(t *testing.T) {
	nc := startNATS(t)
	ended := make(chan error, 1)
	started := make(chan struct{})
	ms, err := events.AddService(nc, "hang", "0.0.1", "test", time.Minute, map[string]events.Operation{
		"wait": func(ctx context.Context, _ events.Request) (any, error) {
			close(started)
			<-ctx.Done()
			ended <- ctx.Err()
			return nil, ctx.Err()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	go func() { <-started; cancel() }()
	_ = events.CallIdempotent(ctx, nc, events.ControlPrefix+".hang.wait", events.Request{}, nil)
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the service's context ended with %v, want cancelled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the service still works for a caller that left 10 s ago")
	}
}

// TestCallIdempotentResendsWhenTheAckingInstanceDies: an instance that
// took a read (acked) and then died (its acks stop) does not lose it: the
// read goes again to an instance that lives, as a kill -9 of one member
// of the queue group must lose nothing.
func TestCallIdempotentResendsWhenTheAckingInstanceDies(t *testing.T) {
	nc := startNATS(t)
	var dead, alive atomic.Int32
	// Both see every request (no queue group), so the order is fixed: the
	// first goes to the instance that acks and dies, the next to the live one.
	if _, err := nc.Subscribe("test.dies", func(m *nats.Msg) {
		if dead.Add(1) == 1 {
			ack := nats.NewMsg(m.Reply)
			ack.Header.Set(events.AckHeader, "1")
			_ = nc.PublishMsg(ack) // and then nothing more: killed
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe("test.dies", func(m *nats.Msg) {
		if alive.Add(1) > 1 {
			_ = m.Respond([]byte(`{"OK": true}`))
		}
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out struct{ OK bool }
	if err := events.CallIdempotent(ctx, nc, "test.dies", struct{}{}, &out); err != nil || !out.OK {
		t.Fatalf("CallIdempotent = %+v, %v; want the live instance's answer", out, err)
	}
	if n := alive.Load(); n != 2 {
		t.Fatalf("the read was sent %d times, want twice (once more after the acking instance went silent)", n)
	}
}
