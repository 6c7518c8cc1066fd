package web

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// sseEvent is one event of GET /events.
type sseEvent struct {
	ID    string
	Kind  string // "error" for the event that ends a stream
	Event events.Event
	Data  struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		ProjectID string `json:"project_id"`
	}
}

// follow opens GET /events and delivers its events until the test ends.
func follow(t *testing.T, token, lastID string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, panel.URL+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 100)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case line == "event: error":
				ev.Kind = "error" // the stream's last words; no id, so not delivered
			case strings.HasPrefix(line, "data: ") && ev.Kind == "error":
			case strings.HasPrefix(line, "data: "):
				raw := []byte(strings.TrimPrefix(line, "data: "))
				if err := json.Unmarshal(raw, &ev.Event); err != nil {
					t.Errorf("event data %s: %v", raw, err)
				}
				var body struct {
					Data json.RawMessage `json:"data"`
				}
				_ = json.Unmarshal(raw, &body)
				_ = json.Unmarshal(body.Data, &ev.Data)
			case line == "":
				if ev.ID != "" {
					out <- ev
				}
				ev = sseEvent{}
			}
		}
	}()
	return out
}

func seq(t *testing.T, id string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		t.Fatalf("event id %q is not a stream sequence", id)
	}
	return n
}

// collect reads events until one matches stop or the time is up.
func collect(t *testing.T, ch <-chan sseEvent, stop func(sseEvent) bool, within time.Duration) []sseEvent {
	t.Helper()
	var got []sseEvent
	timeout := time.After(within)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the event stream ended; got %d events", len(got))
			}
			got = append(got, ev)
			if stop(ev) {
				return got
			}
		case <-timeout:
			t.Fatalf("no matching event within %s; got %d: %+v", within, len(got), got)
		}
	}
}

// TestEventsFilteredByRole: a viewer of project A sees A's events and the
// events of A's deployments, never B's; an admin sees both; a bad
// Last-Event-ID is a 400 that says what to send.
func TestEventsFilteredByRole(t *testing.T) {
	owner := newUser(t, "evowner", false)
	viewer := newUser(t, "evviewer", false)
	a := createProject(t, owner, "ev-a")
	b := createProject(t, owner, "ev-b")
	expect(t, as(t, owner, "PUT", "/projects/ev-a/members/evviewer", map[string]string{"role": "viewer"}), 200)

	v := follow(t, viewer, "")
	adm := follow(t, adminToken, "")

	// Deployment events name their project only inside data: publish one
	// for each project into the real stream, as the deployer does.
	js, err := jetstream.New(panel.NC)
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(js, "mlpanel/test")
	ctx := context.Background()
	if _, err := pub.Publish(ctx, "deployment", "900", "running", map[string]string{"id": "900", "project_id": b.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, "deployment", "901", "running", map[string]string{"id": "901", "project_id": a.ID}); err != nil {
		t.Fatal(err)
	}
	// Changes to B, then to A: when the viewer sees A's, B's would have come first.
	expect(t, as(t, owner, "PUT", "/projects/ev-b", map[string]string{"description": "changed b"}), 200)
	expect(t, as(t, owner, "PUT", "/projects/ev-a", map[string]string{"description": "changed a"}), 200)

	isA := func(e sseEvent) bool {
		return e.Event.Subject == "project/"+a.ID && e.Event.Type == "io.mlpanel.project.updated"
	}
	got := collect(t, v, isA, 20*time.Second)
	sawDeployA := false
	for _, e := range got {
		if e.Event.Subject == "project/"+b.ID || e.Data.ProjectID == b.ID {
			t.Fatalf("the viewer of ev-a saw an event of ev-b: %+v", e)
		}
		sawDeployA = sawDeployA || e.Event.Subject == "deployment/901"
	}
	if !sawDeployA {
		t.Fatalf("the viewer of ev-a did not see ev-a's deployment event; got %+v", got)
	}
	all := collect(t, adm, isA, 20*time.Second)
	subjects := map[string]bool{}
	for _, e := range all {
		subjects[e.Event.Subject] = true
	}
	for _, s := range []string{"project/" + b.ID, "deployment/900", "deployment/901"} {
		if !subjects[s] {
			t.Fatalf("the admin did not see %s; saw %v", s, subjects)
		}
	}

	r := as(t, viewer, "GET", "/events?last_event_id=yesterday", nil)
	expect(t, r, 400)
	if !strings.Contains(string(r.Body), "Last-Event-ID") {
		t.Fatalf("400 for a bad Last-Event-ID does not say what to send: %s", r.Body)
	}
	expect(t, as(t, "", "GET", "/events", nil), 401)
}

// TestEventsResume: reconnecting with Last-Event-ID delivers exactly the
// events after it (those published while the client was away), in order.
func TestEventsResume(t *testing.T) {
	owner := newUser(t, "resumer", false)
	p := createProject(t, owner, "ev-resume")
	first := follow(t, owner, "")
	expect(t, as(t, owner, "PUT", "/projects/ev-resume", map[string]string{"description": "one"}), 200)
	got := collect(t, first, func(e sseEvent) bool { return e.Event.Subject == "project/"+p.ID }, 20*time.Second)
	last := got[len(got)-1]

	// While "disconnected": two more changes.
	expect(t, as(t, owner, "PUT", "/projects/ev-resume", map[string]string{"description": "two"}), 200)
	expect(t, as(t, owner, "PUT", "/projects/ev-resume", map[string]string{"description": "three"}), 200)

	again := follow(t, owner, last.ID)
	var descs []string
	collect(t, again, func(e sseEvent) bool {
		if seq(t, e.ID) <= seq(t, last.ID) {
			t.Fatalf("resumed after id %s but got id %s again", last.ID, e.ID)
		}
		var d struct {
			Data struct{ Description string } `json:"data"`
		}
		raw, _ := json.Marshal(e.Event)
		_ = json.Unmarshal(raw, &d)
		descs = append(descs, d.Data.Description)
		return len(descs) == 2
	}, 20*time.Second)
	if strings.Join(descs, ",") != "two,three" {
		t.Fatalf("resumed events carry %v, want the two changes made while away (two, three)", descs)
	}
}

// TestEventsEndWhenTokenRevoked: an open stream does not outlive its
// token; it ends at the next keep-alive (15 s).
func TestEventsEndWhenTokenRevoked(t *testing.T) {
	tok := newUser(t, "revoked", false)
	ch := follow(t, tok, "")
	var toks []struct{ ID string }
	as(t, adminToken, "GET", "/users/revoked/tokens", nil).JSON(t, &toks)
	if len(toks) != 1 {
		t.Fatalf("tokens of revoked: %+v", toks)
	}
	expect(t, as(t, adminToken, "DELETE", "/users/revoked/tokens/"+toks[0].ID, nil), 200)
	timeout := time.After(40 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the event stream is still open 40 s after its token was revoked")
		}
	}
}
