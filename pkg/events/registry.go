package events

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Registry and run events. Their subjects carry the project as well as
// the entity, so a subscriber follows one project's registry with a
// wildcard: mlpanel.events.model.<project_id>.<model-token>.<change> and
// mlpanel.events.run.<project_id>.<run_id>.finished. The model token is
// the registered model's name with the characters NATS reserves ('.',
// '*', '>' and white space) replaced by '_' (the same rule as every
// other subject token; an empty name is "_"). Two names may share a
// token ("a.b" and "a_b"): data.name is always the exact name.
const (
	EntityModel = "model"
	EntityRun   = "run"
)

// The changes of a registered model (the last token of its subjects,
// and of its CloudEvents type io.mlpanel.model.<change>).
const (
	ModelCreated        = "created"
	ModelRenamed        = "renamed"
	ModelDeleted        = "deleted"
	ModelVersionCreated = "version_created"
	ModelVersionReady   = "version_ready"
	ModelAliasSet       = "alias_set"
	ModelAliasDeleted   = "alias_deleted"
	ModelTagsSet        = "tags_set"
	ModelTagsDeleted    = "tags_deleted"
	// RunFinished is the one run change: update_run with a terminal status.
	RunFinished = "finished"
)

// ModelChanges lists every model change, in the order of a model's life.
var ModelChanges = []string{ModelCreated, ModelRenamed, ModelDeleted, ModelVersionCreated,
	ModelVersionReady, ModelAliasSet, ModelAliasDeleted, ModelTagsSet, ModelTagsDeleted}

// EventTypes is every CloudEvents type the panel publishes for the
// registry and runs (webhook filters are checked against the types of
// all entities, see KnownTypes).
func registryTypes() []string {
	out := make([]string, 0, len(ModelChanges)+1)
	for _, c := range ModelChanges {
		out = append(out, TypePrefix+"."+EntityModel+"."+c)
	}
	return append(out, TypePrefix+"."+EntityRun+"."+RunFinished)
}

// ProjectChanges and DeploymentChanges are the changes the projects and
// deployer services publish (docs/asyncapi.yaml describes each).
var (
	ProjectChanges = []string{"created", "updated", "starting", "running", "unhealthy", "sleeping", "waking",
		"failed", "terminated", "archived", "restored", "deleted"}
	DeploymentChanges = []string{"created", "starting", "progress", "running", "stopping", "stopped", "failed", "deleted"}
)

// KnownTypes is every CloudEvents type on the stream.
func KnownTypes() []string {
	out := registryTypes()
	for _, c := range ProjectChanges {
		out = append(out, TypePrefix+".project."+c)
	}
	for _, c := range DeploymentChanges {
		out = append(out, TypePrefix+".deployment."+c)
	}
	return out
}

// ModelData is the data of a registry event. Fields that do not apply to
// a change, or that the panel did not learn, are left out.
type ModelData struct {
	ProjectID string `json:"project_id"`
	// Name is the registered model's name (after a rename, the new one).
	Name         string `json:"name"`
	PreviousName string `json:"previous_name,omitempty"` // renamed
	Version      string `json:"version,omitempty"`
	Source       string `json:"source,omitempty"`
	RunID        string `json:"run_id,omitempty"`
	Signature    any    `json:"signature,omitempty"`
	Status       string `json:"status,omitempty"` // version events: MLflow's status (READY)
	Alias        string `json:"alias,omitempty"`
	// PreviousVersion is where the alias pointed before (alias_set: absent
	// when it is new; alias_deleted: the version it was removed from).
	PreviousVersion string `json:"previous_version,omitempty"`
	// Target says whose tags changed: "model" or "version" (then Version).
	Target string            `json:"target,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"` // tags_set: the keys and values set
	Keys   []string          `json:"keys,omitempty"` // tags_deleted: the keys removed
}

// RunData is the data of a run event.
type RunData struct {
	ProjectID    string `json:"project_id"`
	Name         string `json:"name"` // the run id, as the scheme wants a name on every event
	RunID        string `json:"run_id"`
	ExperimentID string `json:"experiment_id,omitempty"`
	RunName      string `json:"run_name,omitempty"`
	Status       string `json:"status"`
	EndTime      int64  `json:"end_time,omitempty"`
}

// ModelSubject is the subject of a registry event.
func ModelSubject(projectID, name, change string) string {
	return strings.Join([]string{SubjectPrefix, EntityModel, token(projectID), token(name), token(change)}, ".")
}

// RunSubject is the subject of a run event.
func RunSubject(projectID, runID, change string) string {
	return strings.Join([]string{SubjectPrefix, EntityRun, token(projectID), token(runID), token(change)}, ".")
}

// ModelToken is how a model name appears in its subjects.
func ModelToken(name string) string { return token(name) }

// ModelFilter is the subject filter of every event of one model.
func ModelFilter(projectID, name string) string {
	return strings.Join([]string{SubjectPrefix, EntityModel, token(projectID), token(name), "*"}, ".")
}

// RunFilter is the subject filter of every event of one run.
func RunFilter(projectID, runID string) string {
	return strings.Join([]string{SubjectPrefix, EntityRun, token(projectID), token(runID), "*"}, ".")
}

// TerminalRunStatus reports whether an MLflow run status ends the run.
func TerminalRunStatus(s string) bool { return s == "FINISHED" || s == "FAILED" || s == "KILLED" }

// NewModelEvent builds a registry event. A rename is published under the
// old name (the one subscribers know); data.name is the new one. identity names the write (what
// MLflow was asked and what it answered, e.g. the version number it gave);
// the event id is derived from it, so the same write seen twice (a client
// retry, a retried publish) is stored once by the stream's duplicate
// window, while two different writes never share an id.
func NewModelEvent(source string, d ModelData, change string, identity ...string) (Event, error) {
	key := d.Name
	if d.PreviousName != "" {
		key = d.PreviousName
	}
	return newScoped(source, EntityModel, d.ProjectID, key, change, ModelSubject(d.ProjectID, key, change), d, identity)
}

// NewRunEvent builds a run event (see NewModelEvent for identity).
func NewRunEvent(source string, d RunData, change string, identity ...string) (Event, error) {
	return newScoped(source, EntityRun, d.ProjectID, d.RunID, change, RunSubject(d.ProjectID, d.RunID, change), d, identity)
}

func newScoped(source, entity, projectID, key, change, subject string, data any, identity []string) (Event, error) {
	ev, err := New(source, entity, projectID+"/"+key, change, data)
	if err != nil {
		return Event{}, err
	}
	h := sha256.New()
	for _, s := range append([]string{entity, projectID, key, change}, identity...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	ev.ID = hex.EncodeToString(h.Sum(nil)[:16])
	ev.Time = time.Now().UTC()
	ev.natsSubject = subject
	return ev, nil
}
