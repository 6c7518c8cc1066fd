package mlflowclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// GetExperiment returns an experiment, deleted ones included.
func (c *Client) GetExperiment(ctx context.Context, id string) (Experiment, error) {
	var out struct {
		Experiment Experiment `json:"experiment"`
	}
	err := c.get(ctx, "experiments/get", url.Values{"experiment_id": {id}}, &out)
	return out.Experiment, err
}

// CreateExperiment creates an experiment and returns its id.
func (c *Client) CreateExperiment(ctx context.Context, name, artifactLocation string, tags []Tag) (string, error) {
	in := struct {
		Name             string `json:"name"`
		ArtifactLocation string `json:"artifact_location,omitempty"`
		Tags             []Tag  `json:"tags,omitempty"`
	}{name, artifactLocation, tags}
	var out struct {
		ExperimentID string `json:"experiment_id"`
	}
	err := c.send(ctx, http.MethodPost, "experiments/create", in, &out)
	return out.ExperimentID, err
}

// SearchExperiments returns every experiment of the view that matches
// filter, walking all pages.
func (c *Client) SearchExperiments(ctx context.Context, view, filter string) ([]Experiment, error) {
	var all []Experiment
	err := walk(ctx, func(token string) (string, error) {
		q := url.Values{"max_results": {strconv.Itoa(c.pageSize())}}
		if view != "" {
			q.Set("view_type", view)
		}
		if filter != "" {
			q.Set("filter", filter)
		}
		if token != "" {
			q.Set("page_token", token)
		}
		var out struct {
			Experiments   []Experiment `json:"experiments"`
			NextPageToken string       `json:"next_page_token"`
		}
		if err := c.get(ctx, "experiments/search", q, &out); err != nil {
			return "", err
		}
		all = append(all, out.Experiments...)
		return out.NextPageToken, nil
	})
	return all, err
}

// DeleteExperiment marks an experiment deleted.
func (c *Client) DeleteExperiment(ctx context.Context, id string) error {
	return c.send(ctx, http.MethodPost, "experiments/delete", map[string]string{"experiment_id": id}, nil)
}

// RestoreExperiment brings a deleted experiment back.
func (c *Client) RestoreExperiment(ctx context.Context, id string) error {
	return c.send(ctx, http.MethodPost, "experiments/restore", map[string]string{"experiment_id": id}, nil)
}
