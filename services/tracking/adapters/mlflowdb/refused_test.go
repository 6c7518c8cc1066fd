package mlflowdb

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/app"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// TestRefusedRunFilterLeavesTheProjectAsleep: GET /runs?project_id=p with
// a filter MLflow's grammar refuses answers the 400 and the very message
// MLflow's own server gives for it, without waking the sleeping project
// (it was woken only to hear the refusal); a filter MLflow accepts still
// wakes it and answers.
func TestRefusedRunFilterLeavesTheProjectAsleep(t *testing.T) {
	fx := newFixture(t, 12, 41)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rd := New(log)
	defer rd.Close()
	cat := &catalogOf{projects: []app.Project{{ID: "7", Name: "napping", Status: "sleeping", InternalURL: fx.url, Path: fx.dir}}}
	hc := &http.Client{Timeout: time.Minute}
	svc := app.New(cat, func(u string) *mc.Client { return mc.New(u, hc) }, log, func() int64 { return 1 })
	svc.UseDirectReads(rd)
	ctx := context.Background()

	filters := []string{
		"metrics.accuracy = 'high'",
		"params.lr > '0.1'",
		"params.lr = 0.01",
		"foo.bar = 'x'",
		"attributes.start_time > 'yesterday'",
		"params.a = 'x' OR params.a = 'y'",
		"datasets.source = 'x'",
		"metrics.loss LIKE 0.5",
		"tags.team <> 'nlp'",
		"metrics.acc > 0.9 and tags.t < 'b'",
		"attributes.start_time LIKE 5",
		"attributes.status < 'RUNNING'",
		"datasets.name > 'iris'",
	}
	for _, f := range filters {
		// What MLflow's server answers for it, asked directly.
		err := post(fx.url, "runs/search", map[string]any{"experiment_ids": []string{"1"}, "filter": f}, &struct{}{})
		var re *restError
		if !errors.As(err, &re) || re.status != http.StatusBadRequest {
			t.Errorf("filter %q: MLflow answers %v; the test wants a filter it refuses", f, err)
			continue
		}
		var refusal struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(re.body), &refusal); err != nil || refusal.Message == "" {
			t.Fatalf("filter %q: MLflow's refusal %q is not its JSON error: %v", f, re.body, err)
		}
		for _, exp := range []string{"", "1", "1,2"} {
			_, err := svc.ListRuns(ctx, app.RunQuery{Project: "napping", ExperimentID: exp, Filter: f}, events.ListParams{End: 10})
			// MLflow's message, then what to do; a set it names in the
			// order of the one process that printed it.
			if events.StatusOf(err) != http.StatusBadRequest || !strings.HasPrefix(sortedSets(err.Error()), sortedSets(refusal.Message)) {
				t.Errorf("filter %q, experiment_id %q: got %v (status %d); want 400 %q as MLflow says", f, exp, err, events.StatusOf(err), refusal.Message)
			}
		}
	}
	// A field named twice in order_by: MLflow's server answers 500 to
	// it; refused up front with a 400 that says what to do.
	_, err := svc.ListRuns(ctx, app.RunQuery{Project: "napping", OrderBy: "metrics.accuracy DESC, metrics.`accuracy`"}, events.ListParams{End: 10})
	if events.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "give each field once") {
		t.Errorf("order_by naming a field twice: %v (status %d), want a 400 saying to give each field once", err, events.StatusOf(err))
	}
	if len(cat.woken) > 0 {
		t.Errorf("refused filters and orders woke the sleeping project %d times (%v); it must stay asleep", len(cat.woken), cat.woken)
	}

	// A filter MLflow accepts needs the project: it is woken and answers.
	got, err := svc.ListRuns(ctx, app.RunQuery{Project: "napping", Filter: "params.lr LIKE '%' and metrics.accuracy > -1e9"}, events.ListParams{End: 10})
	if err != nil {
		t.Fatalf("an accepted filter: %v", err)
	}
	if len(cat.woken) != 1 {
		t.Errorf("an accepted filter woke the project %d times, want once", len(cat.woken))
	}
	if got.Total == 0 {
		t.Errorf("an accepted filter that matches runs answered none")
	}
}

var rePySet = regexp.MustCompile(`\{'[^{}]*'\}`)

// sortedSets sorts the members of each Python set a message prints:
// Python orders a set of strings differently in every process.
func sortedSets(msg string) string {
	return rePySet.ReplaceAllStringFunc(msg, func(set string) string {
		members := strings.Split(set[1:len(set)-1], ", ")
		sort.Strings(members)
		return "{" + strings.Join(members, ", ") + "}"
	})
}
