package domain

import (
	"sort"
	"strconv"
	"strings"

	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// RegisteredModel is a registered model as mlpanel shows it; its id is
// its name, as in the original mlpanel.
type RegisteredModel struct {
	ID                   string            `json:"id"`
	ProjectID            string            `json:"project_id"`
	Name                 string            `json:"name"`
	Description          string            `json:"description"`
	CreationTimestamp    int64             `json:"creation_timestamp"`
	LastUpdatedTimestamp int64             `json:"last_updated_timestamp"`
	LatestVersions       []ModelVersion    `json:"latest_versions"`
	Aliases              []mc.Alias        `json:"aliases"`
	Tags                 map[string]string `json:"tags"`
	// CreatedVersion is the version a POST added, absent elsewhere.
	CreatedVersion *ModelVersion `json:"created_version,omitempty"`
}

// NewRegisteredModel wraps an MLflow registered model.
func NewRegisteredModel(projectID string, m mc.RegisteredModel) RegisteredModel {
	aliases := m.Aliases
	if aliases == nil {
		aliases = []mc.Alias{}
	}
	x := RegisteredModel{
		ID:                   m.Name,
		ProjectID:            projectID,
		Name:                 m.Name,
		Description:          m.Description,
		CreationTimestamp:    m.CreationTimestamp,
		LastUpdatedTimestamp: m.LastUpdatedTimestamp,
		LatestVersions:       []ModelVersion{},
		Aliases:              aliases,
		Tags:                 mc.Tags(m.Tags),
	}
	for _, v := range m.LatestVersions {
		x.LatestVersions = append(x.LatestVersions, NewModelVersion(projectID, v, AliasesOf(m.Aliases, v.Version)))
	}
	return x
}

// AliasesOf are the aliases pointing at version, sorted.
func AliasesOf(aliases []mc.Alias, version string) []string {
	out := []string{}
	for _, a := range aliases {
		if a.Version == version {
			out = append(out, a.Alias)
		}
	}
	sort.Strings(out)
	return out
}

// RegisteredModelSortKeys are the _sort values of registered model lists.
var RegisteredModelSortKeys = map[string]func(a, b RegisteredModel) bool{
	"id":                     func(a, b RegisteredModel) bool { return a.Name < b.Name },
	"name":                   func(a, b RegisteredModel) bool { return a.Name < b.Name },
	"creation_timestamp":     func(a, b RegisteredModel) bool { return a.CreationTimestamp < b.CreationTimestamp },
	"last_updated_timestamp": func(a, b RegisteredModel) bool { return a.LastUpdatedTimestamp < b.LastUpdatedTimestamp },
}

// ModelVersion is one version of a registered model. Its id is
// "<name>/<version>" in lists and gets alike.
type ModelVersion struct {
	ID                   string            `json:"id"`
	ProjectID            string            `json:"project_id"`
	ModelID              string            `json:"model_id"` // the registered model's name
	Version              string            `json:"version"`
	RunID                string            `json:"run_id"`
	Source               string            `json:"source"`
	ModelURI             string            `json:"model_uri"` // models:/<name>/<version>, what deployments serve
	Status               string            `json:"status"`
	StatusMessage        string            `json:"status_message,omitempty"`
	Description          string            `json:"description"`
	Aliases              []string          `json:"aliases"`
	Tags                 map[string]string `json:"tags"`
	CreationTimestamp    int64             `json:"creation_timestamp"`
	LastUpdatedTimestamp int64             `json:"last_updated_timestamp"`
}

// NewModelVersion wraps an MLflow model version; aliases come from the
// version itself (get) or from its model (search leaves them out).
func NewModelVersion(projectID string, v mc.ModelVersion, aliases []string) ModelVersion {
	if aliases == nil {
		aliases = v.Aliases
	}
	if aliases == nil {
		aliases = []string{}
	}
	sort.Strings(aliases)
	return ModelVersion{
		ID:                   VersionID(v.Name, v.Version),
		ProjectID:            projectID,
		ModelID:              v.Name,
		Version:              v.Version,
		RunID:                v.RunID,
		Source:               v.Source,
		ModelURI:             ModelURI(v.Name, v.Version),
		Status:               v.Status,
		StatusMessage:        v.StatusMessage,
		Description:          v.Description,
		Aliases:              aliases,
		Tags:                 mc.Tags(v.Tags),
		CreationTimestamp:    v.CreationTimestamp,
		LastUpdatedTimestamp: v.LastUpdatedTimestamp,
	}
}

// VersionID is the id of a model version.
func VersionID(name, version string) string { return name + "/" + version }

// ModelURI is the registry URI MLflow resolves a version by.
func ModelURI(name, version string) string {
	return "models:/" + name + "/" + version
}

// ValidVersion reports whether v is a version number (1, 2, ...).
// ValidExperimentID reports whether id is an experiment id MLflow can
// look up: a whole number that fits its 64-bit column (a longer one is a
// 500 inside MLflow, not a "not found").
func ValidExperimentID(id string) bool {
	n, err := strconv.ParseInt(id, 10, 64)
	return err == nil && n >= 0
}

func ValidVersion(v string) bool {
	n, err := strconv.ParseInt(v, 10, 64)
	return err == nil && n > 0 && strconv.FormatInt(n, 10) == v
}

// ModelVersionSortKeys are the _sort values of model version lists.
var ModelVersionSortKeys = map[string]func(a, b ModelVersion) bool{
	"id": func(a, b ModelVersion) bool {
		if a.ModelID != b.ModelID {
			return a.ModelID < b.ModelID
		}
		return lessNumeric(a.Version, b.Version)
	},
	"version":                func(a, b ModelVersion) bool { return lessNumeric(a.Version, b.Version) },
	"model_id":               func(a, b ModelVersion) bool { return a.ModelID < b.ModelID },
	"status":                 func(a, b ModelVersion) bool { return a.Status < b.Status },
	"run_id":                 func(a, b ModelVersion) bool { return a.RunID < b.RunID },
	"creation_timestamp":     func(a, b ModelVersion) bool { return a.CreationTimestamp < b.CreationTimestamp },
	"last_updated_timestamp": func(a, b ModelVersion) bool { return a.LastUpdatedTimestamp < b.LastUpdatedTimestamp },
}

// NameFilter is the MLflow search filter for one registered model's name.
// MLflow's filter strings take single- or double-quoted literals without
// escapes, so a name holding both quote characters cannot be expressed.
func NameFilter(name string) (string, bool) {
	switch {
	case !strings.Contains(name, "'"):
		return "name='" + name + "'", true
	case !strings.Contains(name, `"`):
		return `name="` + name + `"`, true
	}
	return "", false
}

// SortKeys lists the keys of a sort table, for error messages.
func SortKeys[T any](m map[string]func(a, b T) bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// LoggedModelID is the logged model id of an MLflow 3 source URI
// models:/m-<id> (MLflow wants it beside such a source), or "".
func LoggedModelID(source string) string {
	id, ok := strings.CutPrefix(source, "models:/")
	if !ok || !strings.HasPrefix(id, "m-") || strings.Contains(id, "/") {
		return ""
	}
	return id
}
