package mlflowclient

import "encoding/json"

// Tag is a key/value pair as MLflow sends experiment, run and registry tags.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Tags turns MLflow's tag list into a map.
func Tags(ts []Tag) map[string]string {
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[t.Key] = t.Value
	}
	return m
}

// Experiment as MLflow sends it. Times are milliseconds since the epoch.
type Experiment struct {
	ExperimentID     string `json:"experiment_id"`
	Name             string `json:"name"`
	ArtifactLocation string `json:"artifact_location,omitempty"`
	LifecycleStage   string `json:"lifecycle_stage"`
	LastUpdateTime   int64  `json:"last_update_time,omitempty"`
	CreationTime     int64  `json:"creation_time,omitempty"`
	Tags             []Tag  `json:"tags,omitempty"`
}

// Lifecycle stages of experiments and runs.
const (
	StageActive  = "active"
	StageDeleted = "deleted"
)

// View types of experiment and run searches.
const (
	ViewActive  = "ACTIVE_ONLY"
	ViewDeleted = "DELETED_ONLY"
	ViewAll     = "ALL"
)

// RunInfo is a run's metadata.
type RunInfo struct {
	RunID          string `json:"run_id"`
	RunUUID        string `json:"run_uuid,omitempty"`
	RunName        string `json:"run_name,omitempty"`
	ExperimentID   string `json:"experiment_id"`
	UserID         string `json:"user_id,omitempty"`
	Status         string `json:"status"`
	StartTime      int64  `json:"start_time,omitempty"`
	EndTime        int64  `json:"end_time,omitempty"`
	ArtifactURI    string `json:"artifact_uri,omitempty"`
	LifecycleStage string `json:"lifecycle_stage"`
}

// Run statuses.
const (
	RunRunning   = "RUNNING"
	RunScheduled = "SCHEDULED"
)

// Metric is one logged value (also one point of a metric's history).
type Metric struct {
	Key       string  `json:"key"`
	Value     float64 `json:"value"`
	Timestamp int64   `json:"timestamp"`
	Step      int64   `json:"step"`
}

// UnmarshalJSON accepts MLflow's non-finite values, which it sends as the
// strings "NaN", "Infinity" and "-Infinity".
func (m *Metric) UnmarshalJSON(b []byte) error {
	var raw struct {
		Key       string          `json:"key"`
		Value     json.RawMessage `json:"value"`
		Timestamp int64           `json:"timestamp"`
		Step      int64           `json:"step"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m.Key, m.Timestamp, m.Step = raw.Key, raw.Timestamp, raw.Step
	v, err := parseFloat(raw.Value)
	m.Value = v
	return err
}

// RunData holds a run's latest metrics, params and tags.
type RunData struct {
	Metrics []Metric `json:"metrics,omitempty"`
	Params  []Tag    `json:"params,omitempty"`
	Tags    []Tag    `json:"tags,omitempty"`
}

// Run as MLflow sends it. Inputs and outputs (datasets, logged models)
// are passed through untouched.
type Run struct {
	Info    RunInfo         `json:"info"`
	Data    RunData         `json:"data"`
	Inputs  json.RawMessage `json:"inputs,omitempty"`
	Outputs json.RawMessage `json:"outputs,omitempty"`
}

// FileInfo is one entry of an artifact listing; Path is relative to the
// run's artifact root.
type FileInfo struct {
	Path     string `json:"path"`
	IsDir    bool   `json:"is_dir"`
	FileSize int64  `json:"file_size,omitempty"`
}

// ArtifactList is the answer of artifacts/list.
type ArtifactList struct {
	RootURI string     `json:"root_uri"`
	Files   []FileInfo `json:"files,omitempty"`
}

// Alias points a name at one version of a registered model.
type Alias struct {
	Alias   string `json:"alias"`
	Version string `json:"version"`
}

// RegisteredModel as MLflow sends it.
type RegisteredModel struct {
	Name                 string         `json:"name"`
	CreationTimestamp    int64          `json:"creation_timestamp,omitempty"`
	LastUpdatedTimestamp int64          `json:"last_updated_timestamp,omitempty"`
	Description          string         `json:"description,omitempty"`
	LatestVersions       []ModelVersion `json:"latest_versions,omitempty"`
	Tags                 []Tag          `json:"tags,omitempty"`
	Aliases              []Alias        `json:"aliases,omitempty"`
}

// ModelVersion as MLflow sends it. Searches leave Aliases empty; get fills
// them.
type ModelVersion struct {
	Name                 string   `json:"name"`
	Version              string   `json:"version"`
	CreationTimestamp    int64    `json:"creation_timestamp,omitempty"`
	LastUpdatedTimestamp int64    `json:"last_updated_timestamp,omitempty"`
	CurrentStage         string   `json:"current_stage,omitempty"`
	Description          string   `json:"description,omitempty"`
	Source               string   `json:"source,omitempty"`
	RunID                string   `json:"run_id,omitempty"`
	Status               string   `json:"status,omitempty"`
	StatusMessage        string   `json:"status_message,omitempty"`
	RunLink              string   `json:"run_link,omitempty"`
	Tags                 []Tag    `json:"tags,omitempty"`
	Aliases              []string `json:"aliases,omitempty"`
}
