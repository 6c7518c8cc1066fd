package domain

import (
	"strings"

	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// Run is MLflow's run JSON (info, data, inputs, outputs) plus the
// top-level id and project_id the original mlpanel added.
type Run struct {
	ID        string `json:"id"`
	ProjectID string `json:"project_id"`
	mc.Run
}

// NewRun wraps an MLflow run.
func NewRun(projectID string, r mc.Run) Run {
	if r.Info.RunID == "" {
		r.Info.RunID = r.Info.RunUUID
	}
	return Run{ID: r.Info.RunID, ProjectID: projectID, Run: r}
}

// RunSortKey returns the order of a _sort value for runs: the info fields
// by name, and metrics.<key>, params.<key>, tags.<key>. Runs without the
// metric, param or tag sort first.
func RunSortKey(key string) (func(a, b Run) bool, bool) {
	switch key {
	case "id", "run_id":
		return func(a, b Run) bool { return a.ID < b.ID }, true
	case "run_name", "name":
		return func(a, b Run) bool { return a.Info.RunName < b.Info.RunName }, true
	case "experiment_id":
		return func(a, b Run) bool { return lessNumeric(a.Info.ExperimentID, b.Info.ExperimentID) }, true
	case "status":
		return func(a, b Run) bool { return a.Info.Status < b.Info.Status }, true
	case "user_id":
		return func(a, b Run) bool { return a.Info.UserID < b.Info.UserID }, true
	case "start_time":
		return func(a, b Run) bool { return a.Info.StartTime < b.Info.StartTime }, true
	case "end_time":
		return func(a, b Run) bool { return a.Info.EndTime < b.Info.EndTime }, true
	}
	prefix, name, ok := strings.Cut(key, ".")
	if !ok || name == "" {
		return nil, false
	}
	switch prefix {
	case "metrics":
		return func(a, b Run) bool {
			x, okA := metricOf(a, name)
			y, okB := metricOf(b, name)
			if !okA || !okB {
				return !okA && okB
			}
			return x < y
		}, true
	case "params":
		return func(a, b Run) bool { return lessOptional(tagOf(a.Data.Params, name), tagOf(b.Data.Params, name)) }, true
	case "tags":
		return func(a, b Run) bool { return lessOptional(tagOf(a.Data.Tags, name), tagOf(b.Data.Tags, name)) }, true
	}
	return nil, false
}

// RunSortHelp lists the _sort values runs accept, for error messages.
const RunSortHelp = "id, run_name, experiment_id, status, user_id, start_time, end_time, metrics.<key>, params.<key>, tags.<key>"

func metricOf(r Run, key string) (float64, bool) {
	for _, m := range r.Data.Metrics {
		if m.Key == key {
			return m.Value, true
		}
	}
	return 0, false
}

func tagOf(ts []mc.Tag, key string) *string {
	for _, t := range ts {
		if t.Key == key {
			return &t.Value
		}
	}
	return nil
}

func lessOptional(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b != nil
	}
	return *a < *b
}

// HasMetric reports whether the run logged key.
func (r Run) HasMetric(key string) bool {
	_, ok := metricOf(r, key)
	return ok
}

// MetricKeys are the keys of the run's metrics.
func (r Run) MetricKeys() []string {
	keys := make([]string, 0, len(r.Data.Metrics))
	for _, m := range r.Data.Metrics {
		keys = append(keys, m.Key)
	}
	return keys
}

// MetricPoint is one value of a metric's history.
type MetricPoint struct {
	Key       string  `json:"key"`
	Step      int64   `json:"step"`
	Timestamp int64   `json:"timestamp"`
	Value     float64 `json:"-"`
}

// MarshalJSON writes a non-finite value as MLflow does.
func (p MetricPoint) MarshalJSON() ([]byte, error) {
	return mc.Metric{Key: p.Key, Step: p.Step, Timestamp: p.Timestamp, Value: p.Value}.MarshalJSON()
}

// MetricSortKeys are the _sort values of a metric history.
var MetricSortKeys = map[string]func(a, b MetricPoint) bool{
	"step": func(a, b MetricPoint) bool {
		if a.Step != b.Step {
			return a.Step < b.Step
		}
		return a.Timestamp < b.Timestamp
	},
	"timestamp": func(a, b MetricPoint) bool { return a.Timestamp < b.Timestamp },
	"value":     func(a, b MetricPoint) bool { return a.Value < b.Value },
}
