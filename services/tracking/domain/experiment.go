// Package domain holds what mlpanel shows of MLflow's objects and the
// rules that do not depend on NATS or HTTP: the experiment time rule,
// artifact types, artifact path safety, ids and sort keys.
package domain

import (
	"strconv"

	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// Experiment tags mlpanel writes. An experiment carrying CreatedAtTag was
// created through mlpanel; the others were created directly with an
// MLflow client.
const (
	CreatedAtTag   = "mlpanel.created_at" // milliseconds since the epoch
	CreatedByTag   = "mlpanel.created_by"
	DescriptionTag = "mlflow.note.content" // MLflow's own description tag
)

// Experiment is an MLflow experiment as mlpanel shows it (the original
// mlpanel's fields plus tags and the run count).
type Experiment struct {
	ID               string            `json:"id"`
	ProjectID        string            `json:"project_id"`
	Name             string            `json:"name"`
	Description      string            `json:"description"`
	ArtifactLocation string            `json:"artifact_location"`
	LifecycleStage   string            `json:"lifecycle_stage"`
	CreationTime     int64             `json:"creation_time"`
	LastUpdateTime   int64             `json:"last_update_time"`
	UserID           string            `json:"user_id,omitempty"`
	Tags             map[string]string `json:"tags"`
	RunCount         int               `json:"run_count"`
	// CreatedThroughMlpanel tells which time rule applied.
	CreatedThroughMlpanel bool `json:"created_through_mlpanel"`
}

// RunTimes summarises an experiment's runs for the time rule.
type RunTimes struct {
	Count      int
	FirstStart int64 // earliest start time
	LastUpdate int64 // latest end time; a run still running counts with its start
}

// Add counts one run.
func (t *RunTimes) Add(info mc.RunInfo) {
	t.Count++
	if info.StartTime > 0 && (t.FirstStart == 0 || info.StartTime < t.FirstStart) {
		t.FirstStart = info.StartTime
	}
	last := info.EndTime
	if info.Status == mc.RunRunning || info.Status == mc.RunScheduled || last == 0 {
		last = info.StartTime
	}
	if last > t.LastUpdate {
		t.LastUpdate = last
	}
}

// NewExperiment builds the view of e with the seed's time rule:
//   - created through mlpanel: the times mlpanel recorded (creation in the
//     CreatedAtTag tag; MLflow's last update, which moves with every change
//     made through mlpanel);
//   - created outside mlpanel with runs: creation = start of its first run,
//     last update = end of its last run (a running run counts with its
//     start time);
//   - created outside mlpanel without runs: MLflow's own times.
func NewExperiment(projectID string, e mc.Experiment, runs RunTimes) Experiment {
	tags := mc.Tags(e.Tags)
	x := Experiment{
		ID:               e.ExperimentID,
		ProjectID:        projectID,
		Name:             e.Name,
		Description:      tags[DescriptionTag],
		ArtifactLocation: e.ArtifactLocation,
		LifecycleStage:   e.LifecycleStage,
		CreationTime:     e.CreationTime,
		LastUpdateTime:   e.LastUpdateTime,
		UserID:           tags[CreatedByTag],
		Tags:             tags,
		RunCount:         runs.Count,
	}
	if created, err := strconv.ParseInt(tags[CreatedAtTag], 10, 64); err == nil && created > 0 {
		x.CreatedThroughMlpanel = true
		x.CreationTime = created
		x.LastUpdateTime = max(e.LastUpdateTime, created)
		return x
	}
	if runs.Count > 0 && runs.FirstStart > 0 {
		x.CreationTime = runs.FirstStart
		x.LastUpdateTime = max(runs.LastUpdate, runs.FirstStart)
	}
	return x
}

// ExperimentSortKeys are the _sort values of experiment lists.
var ExperimentSortKeys = map[string]func(a, b Experiment) bool{
	"id":               func(a, b Experiment) bool { return lessNumeric(a.ID, b.ID) },
	"name":             func(a, b Experiment) bool { return a.Name < b.Name },
	"creation_time":    func(a, b Experiment) bool { return a.CreationTime < b.CreationTime },
	"last_update_time": func(a, b Experiment) bool { return a.LastUpdateTime < b.LastUpdateTime },
	"lifecycle_stage":  func(a, b Experiment) bool { return a.LifecycleStage < b.LifecycleStage },
	"run_count":        func(a, b Experiment) bool { return a.RunCount < b.RunCount },
}

// lessNumeric orders ids as numbers when both are, as strings otherwise.
func lessNumeric(a, b string) bool {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA == nil && errB == nil {
		return x < y
	}
	return a < b
}
