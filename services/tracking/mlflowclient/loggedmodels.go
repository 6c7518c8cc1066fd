package mlflowclient

import (
	"context"
	"encoding/json"
	"net/url"
)

// LoggedModel is an MLflow 3 logged model (models:/m-<id>). Its files live
// beside the run's artifacts, not among them.
type LoggedModel struct {
	ModelID      string `json:"model_id"`
	ExperimentID string `json:"experiment_id"`
	Name         string `json:"name"`
	ArtifactURI  string `json:"artifact_uri"`
	Status       string `json:"status"`
	SourceRunID  string `json:"source_run_id"`
}

// GetLoggedModel returns a logged model's info.
func (c *Client) GetLoggedModel(ctx context.Context, id string) (LoggedModel, error) {
	var out struct {
		Model struct {
			Info LoggedModel `json:"info"`
		} `json:"model"`
	}
	err := c.get(ctx, "logged-models/"+url.PathEscape(id), nil, &out)
	return out.Model.Info, err
}

// ListLoggedModelArtifacts lists one folder level of a logged model's
// files; path "" is its root. Paths come back relative to that root.
func (c *Client) ListLoggedModelArtifacts(ctx context.Context, id, path string) (ArtifactList, error) {
	q := url.Values{}
	if path != "" {
		q.Set("artifact_directory_path", path)
	}
	var out ArtifactList
	err := c.get(ctx, "logged-models/"+url.PathEscape(id)+"/artifacts/directories", q, &out)
	return out, err
}

// LoggedModelArtifactURL is where one file of a logged model is
// downloaded from (the endpoint MLflow's own UI uses).
func (c *Client) LoggedModelArtifactURL(id, path string) string {
	return c.base + "/ajax-api/2.0/mlflow/logged-models/" + url.PathEscape(id) +
		"/artifacts/files?" + url.Values{"artifact_file_path": {path}}.Encode()
}

// ModelOutputs are the ids of the logged models a run produced (its
// outputs.model_outputs), in order.
func (r Run) ModelOutputs() []string {
	if len(r.Outputs) == 0 {
		return nil
	}
	var out struct {
		ModelOutputs []struct {
			ModelID string `json:"model_id"`
		} `json:"model_outputs"`
	}
	if json.Unmarshal(r.Outputs, &out) != nil {
		return nil
	}
	ids := make([]string, 0, len(out.ModelOutputs))
	seen := map[string]bool{}
	for _, m := range out.ModelOutputs {
		if m.ModelID != "" && !seen[m.ModelID] {
			seen[m.ModelID] = true
			ids = append(ids, m.ModelID)
		}
	}
	return ids
}
