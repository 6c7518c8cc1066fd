package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// depFollower is one session of a subscriber that follows deployment
// events with a durable consumer: it connects on its own, fetches in
// small batches, acks each event after handling it, and disconnects.
type depFollower struct {
	durable string
	got     []events.Event
}

// session fetches and acks events until done reports true for what it
// has received so far, then disconnects as a stopped subscriber would.
func (f *depFollower) session(t *testing.T, deploymentID string, done func([]events.Event) bool, timeout time.Duration) {
	t.Helper()
	nc, err := nats.Connect(panel.NC.ConnectedUrl(), nats.Name("e2e-follower"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cons, err := js.Consumer(ctx, events.StreamName, f.durable)
	if err != nil {
		t.Fatalf("opening durable consumer %s: %v", f.durable, err)
	}
	for !done(f.mine(deploymentID)) {
		if ctx.Err() != nil {
			t.Fatalf("follower session timed out with %v", types(f.mine(deploymentID)))
		}
		batch, err := cons.Fetch(5, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for msg := range batch.Messages() {
			ev, err := events.Decode(msg.Data())
			if err != nil {
				t.Fatalf("undecodable event on %s: %v", msg.Subject(), err)
			}
			ev.EntityID = strings.Split(msg.Subject(), ".")[3]
			f.got = append(f.got, ev)
			if err := msg.Ack(); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatal(err)
		}
	}
}

func (f *depFollower) mine(id string) []events.Event {
	var out []events.Event
	for _, e := range f.got {
		if e.EntityID == id {
			out = append(out, e)
		}
	}
	return out
}

func types(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = strings.TrimPrefix(e.Type, events.TypePrefix+".deployment.")
	}
	return out
}

func hasType(evs []events.Event, typ string) bool {
	for _, e := range evs {
		if strings.HasSuffix(e.Type, ".deployment."+typ) {
			return true
		}
	}
	return false
}

// TestDeployEventsDurable: a durable subscriber, stopped and restarted
// mid-way, receives every event of a deployment's life in order, none
// lost, none duplicated; each carries the full deployment.
func TestDeployEventsDurable(t *testing.T) {
	f := depSetup(t)
	ctx := context.Background()
	js, err := jetstream.New(panel.NC)
	if err != nil {
		t.Fatal(err)
	}
	fl := &depFollower{durable: "e2e-deployments"}
	if _, err := js.CreateOrUpdateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{
		Durable:       fl.durable,
		FilterSubject: events.SubjectPrefix + ".deployment.>",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	defer js.DeleteConsumer(ctx, events.StreamName, fl.durable)

	d := createDeployment(t, map[string]any{"project_id": f.project.ID, "model_id": f.model, "version": f.version})
	// First session: until the deployment runs.
	fl.session(t, d.ID, func(evs []events.Event) bool { return hasType(evs, "running") }, 5*time.Minute)

	// While nobody listens: stop and delete it.
	expect(t, call(t, http.MethodPut, "/deployments/"+d.ID+"/stop", nil), http.StatusOK)
	waitDeployment(t, d.ID, "stopped", time.Minute)
	deleteDeploymentQuietly(d.ID)

	// Second session picks up where the first acked.
	fl.session(t, d.ID, func(evs []events.Event) bool { return hasType(evs, "deleted") }, 2*time.Minute)
	got := fl.mine(d.ID)

	// The stream's own record of this deployment is the truth.
	truth := depStreamEvents(t, d.ID, len(got)+1)
	if len(truth) != len(got) {
		t.Fatalf("follower got %d events %v, the stream holds %d %v", len(got), types(got), len(truth), types(truth))
	}
	seen := map[string]bool{}
	for i := range got {
		if got[i].ID != truth[i].ID {
			t.Fatalf("event %d is %s (%s), the stream has %s (%s): order differs", i, got[i].ID, got[i].Type, truth[i].ID, truth[i].Type)
		}
		if seen[got[i].ID] {
			t.Fatalf("event %s received twice", got[i].ID)
		}
		seen[got[i].ID] = true
	}

	// Every status change is there, in the order it happened.
	want := []string{"created", "starting", "running", "stopping", "stopped", "deleted"}
	var changes []string
	for _, typ := range types(got) {
		if typ != "progress" {
			changes = append(changes, typ)
		}
	}
	if strings.Join(changes, ",") != strings.Join(want, ",") {
		t.Fatalf("event types %v, want %v", changes, want)
	}
	// Each event carries the whole deployment as it was then.
	for _, e := range got {
		var dd deployment
		if err := jsonUnmarshal(e.Data, &dd); err != nil || dd.ID != d.ID || dd.ModelURI != d.ModelURI || dd.Status == "" {
			t.Fatalf("event %s data %s: want the full deployment", e.Type, e.Data)
		}
		if e.Source != "mlpanel/deployer" || e.Subject != "deployment/"+d.ID || e.SpecVersion != "1.0" {
			t.Fatalf("event envelope %+v", e)
		}
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// depStreamEvents reads what the stream holds for one deployment, in
// order, up to max events.
func depStreamEvents(t *testing.T, id string, max int) []events.Event {
	t.Helper()
	js, err := jetstream.New(panel.NC)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := js.OrderedConsumer(context.Background(), events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SubjectPrefix + ".deployment." + id + ".*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for len(out) < max {
		msg, err := oc.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			break
		}
		ev, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatalf("undecodable event on %s: %v", msg.Subject(), err)
		}
		out = append(out, ev)
	}
	return out
}
