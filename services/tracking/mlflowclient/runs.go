package mlflowclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// GetRun returns a run, deleted ones included.
func (c *Client) GetRun(ctx context.Context, id string) (Run, error) {
	var out struct {
		Run Run `json:"run"`
	}
	err := c.get(ctx, "runs/get", url.Values{"run_id": {id}}, &out)
	return out.Run, err
}

// RunSearch is what runs/search takes; Filter and OrderBy are MLflow's
// own syntax, passed through.
type RunSearch struct {
	ExperimentIDs []string
	Filter        string
	OrderBy       []string
	View          string // ACTIVE_ONLY (default), DELETED_ONLY, ALL
}

// MaxSearchExperiments bounds the experiment ids of one runs/search
// request; more are searched in chunks.
const MaxSearchExperiments = 100

// SearchRuns returns every matching run, walking all pages. More
// experiments than one request takes are searched in chunks; the order
// then holds within each chunk only, so callers that need one order over
// many experiments sort themselves.
func (c *Client) SearchRuns(ctx context.Context, s RunSearch) ([]Run, error) {
	var all []Run
	ids := s.ExperimentIDs
	for len(ids) > 0 {
		n := min(len(ids), MaxSearchExperiments)
		chunk := ids[:n]
		ids = ids[n:]
		err := walk(ctx, func(token string) (string, error) {
			in := struct {
				ExperimentIDs []string `json:"experiment_ids"`
				Filter        string   `json:"filter,omitempty"`
				RunViewType   string   `json:"run_view_type,omitempty"`
				MaxResults    int      `json:"max_results"`
				OrderBy       []string `json:"order_by,omitempty"`
				PageToken     string   `json:"page_token,omitempty"`
			}{chunk, s.Filter, s.View, c.pageSize(), s.OrderBy, token}
			var out struct {
				Runs          []Run  `json:"runs"`
				NextPageToken string `json:"next_page_token"`
			}
			if err := c.send(ctx, http.MethodPost, "runs/search", in, &out); err != nil {
				return "", err
			}
			all = append(all, out.Runs...)
			return out.NextPageToken, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return all, nil
}

// DeleteRun marks a run deleted.
func (c *Client) DeleteRun(ctx context.Context, id string) error {
	return c.send(ctx, http.MethodPost, "runs/delete", map[string]string{"run_id": id}, nil)
}

// RestoreRun brings a deleted run back.
func (c *Client) RestoreRun(ctx context.Context, id string) error {
	return c.send(ctx, http.MethodPost, "runs/restore", map[string]string{"run_id": id}, nil)
}

// MetricHistory returns every logged value of one metric of a run,
// walking all pages. MLflow answers an unknown run or key with no values.
func (c *Client) MetricHistory(ctx context.Context, runID, key string) ([]Metric, error) {
	var all []Metric
	err := walk(ctx, func(token string) (string, error) {
		q := url.Values{"run_id": {runID}, "metric_key": {key}, "max_results": {strconv.Itoa(c.pageSize())}}
		if token != "" {
			q.Set("page_token", token)
		}
		var out struct {
			Metrics       []Metric `json:"metrics"`
			NextPageToken string   `json:"next_page_token"`
		}
		if err := c.get(ctx, "metrics/get-history", q, &out); err != nil {
			return "", err
		}
		all = append(all, out.Metrics...)
		return out.NextPageToken, nil
	})
	return all, err
}

// ListArtifacts lists one folder level of a run's artifacts; path ""
// is the root.
func (c *Client) ListArtifacts(ctx context.Context, runID, path string) (ArtifactList, error) {
	q := url.Values{"run_id": {runID}}
	if path != "" {
		q.Set("path", path)
	}
	var out ArtifactList
	err := c.get(ctx, "artifacts/list", q, &out)
	return out, err
}

// ArtifactURL is where one file of a run's artifacts is downloaded from.
// The server's get-artifact endpoint reads through whatever artifact
// store the run uses (served mlflow-artifacts or a local folder), so the
// caller does not have to know which.
func (c *Client) ArtifactURL(runID, path string) string {
	return c.base + "/get-artifact?" + url.Values{"run_uuid": {runID}, "path": {path}}.Encode()
}
