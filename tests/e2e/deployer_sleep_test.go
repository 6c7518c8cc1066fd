package e2e

import (
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// sleepyDeployment is a deployment as the sleep test reads it.
type sleepyDeployment struct {
	deployment
	IdleTimeout string `json:"idle_timeout"`
	MinAwake    *int   `json:"min_awake"`
	SleepReason string `json:"sleep_reason"`
}

func getSleepyDeployment(t *testing.T, id string) sleepyDeployment {
	t.Helper()
	r := call(t, http.MethodGet, "/deployments/"+id, nil)
	expect(t, r, http.StatusOK)
	var d sleepyDeployment
	r.JSON(t, &d)
	return d
}

// deploymentEvents records the event types of one deployment.
func deploymentEvents(t *testing.T, nc *nats.Conn, id string) func() []string {
	var mu sync.Mutex
	var types []string
	sub, err := nc.Subscribe(events.SubjectPrefix+".deployment."+id+".>", func(m *nats.Msg) {
		ev, err := events.Decode(m.Data)
		if err != nil {
			return
		}
		mu.Lock()
		types = append(types, ev.Type[strings.LastIndex(ev.Type, ".")+1:])
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() []string {
		_ = nc.Flush()
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), types...)
	}
}

// A local deployment with an idle_timeout (min_awake 0, as KServe's
// scale to zero) stops its model server when no prediction comes and
// shows sleeping; the next predictions are held while it wakes, started
// once, and answered as if it never slept. min_awake 1 (the default
// without idle_timeout) keeps it up; contradictory settings are 400s.
func TestDeploymentSleepsAndWakesOnPredict(t *testing.T) {
	f := depSetup(t)
	p := f.project
	for _, bad := range []map[string]any{
		{"idle_timeout": "soon"},
		{"idle_timeout": "5s", "min_awake": 1},
		{"min_awake": 0},
		{"min_awake": 3},
	} {
		body := map[string]any{"project_id": p.ID, "model_id": f.model}
		for k, v := range bad {
			body[k] = v
		}
		r := call(t, http.MethodPost, "/deployments", body)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Message(), "min_awake") && !strings.Contains(r.Message(), "idle_timeout") {
			t.Fatalf("create with %v: %d %s, want 400 with the rule", bad, r.Status, r.Body)
		}
	}

	// The reference first: loading the model in Python takes longer
	// than the idle timeout below.
	want := pythonPredictions(t, p, f.model, f.version)
	d := createDeployment(t, map[string]any{"project_id": p.ID, "model_id": f.model, "idle_timeout": "8s"})
	first := waitDeployment(t, d.ID, "running", 4*time.Minute)
	got := getSleepyDeployment(t, d.ID)
	if got.IdleTimeout != "8s" || got.MinAwake == nil || *got.MinAwake != 0 {
		t.Fatalf("idle_timeout %q, min_awake %v: want 8s and 0", got.IdleTimeout, got.MinAwake)
	}
	split := map[string]any{"dataframe_split": map[string]any{"columns": d.InputColumns, "data": irisRows}}
	if pred := depPredictions(t, d.ID, split); !reflect.DeepEqual(pred, want) {
		t.Fatalf("predictions %v, want %v", pred, want)
	}

	waitDeployment(t, d.ID, "sleeping", time.Minute)
	asleep := getSleepyDeployment(t, d.ID)
	if asleep.DesiredState != "running" || asleep.URL != "" || asleep.Pid != 0 || !strings.Contains(asleep.SleepReason, "idle_timeout") {
		t.Fatalf("asleep: %+v", asleep)
	}
	deadline := time.Now().Add(30 * time.Second)
	for groupAlive(first.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the model server %d of a sleeping deployment still runs", first.Pid)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Two predictions at once: both held, both answered, one start.
	seen := deploymentEvents(t, panel.NC, d.ID)
	var wg sync.WaitGroup
	results := make([][]any, 2)
	for i := range results {
		wg.Go(func() { results[i] = depPredictions(t, d.ID, split) })
	}
	wg.Wait()
	for i, pred := range results {
		if !reflect.DeepEqual(pred, want) {
			t.Fatalf("prediction %d after the wake: %v, want %v", i, pred, want)
		}
	}
	awake := getSleepyDeployment(t, d.ID)
	if awake.Status != "running" || awake.Pid == 0 || awake.Pid == first.Pid {
		t.Fatalf("after the wake: %+v", awake)
	}
	ev := seen()
	if count(ev, "waking") != 1 || count(ev, "running") != 1 || count(ev, "sleeping") != 0 {
		t.Fatalf("events %v: want one waking, then running", ev)
	}

	// min_awake 1 keeps it up; bad changes are 400s and change nothing.
	for _, bad := range []map[string]any{{"min_awake": 1}, {"idle_timeout": "-1s"}, {}} {
		r := call(t, http.MethodPatch, "/deployments/"+d.ID, bad)
		if r.Status != http.StatusBadRequest {
			t.Fatalf("PATCH %v: %d %s, want 400", bad, r.Status, r.Body)
		}
	}
	r := call(t, http.MethodPatch, "/deployments/"+d.ID, map[string]any{"idle_timeout": "0", "min_awake": 1})
	expect(t, r, http.StatusOK)
	time.Sleep(12 * time.Second) // well past the old idle_timeout
	kept := getSleepyDeployment(t, d.ID)
	if kept.Status != "running" || kept.Pid != awake.Pid || kept.MinAwake == nil || *kept.MinAwake != 1 || kept.IdleTimeout != "" {
		t.Fatalf("with min_awake 1: %+v, want it running on pid %d", kept, awake.Pid)
	}
}
