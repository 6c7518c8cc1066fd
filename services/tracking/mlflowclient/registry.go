package mlflowclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// GetRegisteredModel returns a registered model with its latest versions
// and aliases.
func (c *Client) GetRegisteredModel(ctx context.Context, name string) (RegisteredModel, error) {
	var out struct {
		Model RegisteredModel `json:"registered_model"`
	}
	err := c.get(ctx, "registered-models/get", url.Values{"name": {name}}, &out)
	return out.Model, err
}

// CreateRegisteredModel creates an empty registered model.
func (c *Client) CreateRegisteredModel(ctx context.Context, name, description string, tags []Tag) (RegisteredModel, error) {
	in := struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		Tags        []Tag  `json:"tags,omitempty"`
	}{name, description, tags}
	var out struct {
		Model RegisteredModel `json:"registered_model"`
	}
	err := c.send(ctx, http.MethodPost, "registered-models/create", in, &out)
	return out.Model, err
}

// SearchRegisteredModels returns every registered model matching filter,
// walking all pages.
func (c *Client) SearchRegisteredModels(ctx context.Context, filter string) ([]RegisteredModel, error) {
	var all []RegisteredModel
	err := walk(ctx, func(token string) (string, error) {
		q := url.Values{"max_results": {strconv.Itoa(c.pageSize())}}
		if filter != "" {
			q.Set("filter", filter)
		}
		if token != "" {
			q.Set("page_token", token)
		}
		var out struct {
			Models        []RegisteredModel `json:"registered_models"`
			NextPageToken string            `json:"next_page_token"`
		}
		if err := c.get(ctx, "registered-models/search", q, &out); err != nil {
			return "", err
		}
		all = append(all, out.Models...)
		return out.NextPageToken, nil
	})
	return all, err
}

// DeleteRegisteredModel deletes a registered model and all its versions.
// The registry has no soft delete.
func (c *Client) DeleteRegisteredModel(ctx context.Context, name string) error {
	return c.send(ctx, http.MethodDelete, "registered-models/delete", map[string]string{"name": name}, nil)
}

// VersionInput is what model-versions/create takes.
type VersionInput struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	RunID  string `json:"run_id,omitempty"`
	// ModelID is the MLflow 3 logged model (m-<id>) a models:/m-<id>
	// source names; MLflow requires it for such sources.
	ModelID     string `json:"model_id,omitempty"`
	Description string `json:"description,omitempty"`
	Tags        []Tag  `json:"tags,omitempty"`
}

// CreateModelVersion adds a version to a registered model.
func (c *Client) CreateModelVersion(ctx context.Context, in VersionInput) (ModelVersion, error) {
	var out struct {
		Version ModelVersion `json:"model_version"`
	}
	err := c.send(ctx, http.MethodPost, "model-versions/create", in, &out)
	return out.Version, err
}

// GetModelVersion returns one version with its aliases.
func (c *Client) GetModelVersion(ctx context.Context, name, version string) (ModelVersion, error) {
	var out struct {
		Version ModelVersion `json:"model_version"`
	}
	err := c.get(ctx, "model-versions/get", url.Values{"name": {name}, "version": {version}}, &out)
	return out.Version, err
}

// SearchModelVersions returns every version matching filter (e.g.
// name='m'), walking all pages. Aliases are not filled in.
func (c *Client) SearchModelVersions(ctx context.Context, filter string) ([]ModelVersion, error) {
	var all []ModelVersion
	err := walk(ctx, func(token string) (string, error) {
		q := url.Values{"max_results": {strconv.Itoa(c.pageSize())}}
		if filter != "" {
			q.Set("filter", filter)
		}
		if token != "" {
			q.Set("page_token", token)
		}
		var out struct {
			Versions      []ModelVersion `json:"model_versions"`
			NextPageToken string         `json:"next_page_token"`
		}
		if err := c.get(ctx, "model-versions/search", q, &out); err != nil {
			return "", err
		}
		all = append(all, out.Versions...)
		return out.NextPageToken, nil
	})
	return all, err
}

// DeleteModelVersion deletes one version (hard delete).
func (c *Client) DeleteModelVersion(ctx context.Context, name, version string) error {
	return c.send(ctx, http.MethodDelete, "model-versions/delete", map[string]string{"name": name, "version": version}, nil)
}

// SetAlias points alias at version, moving it from another version.
func (c *Client) SetAlias(ctx context.Context, name, alias, version string) error {
	return c.send(ctx, http.MethodPost, "registered-models/alias",
		map[string]string{"name": name, "alias": alias, "version": version}, nil)
}

// DeleteAlias removes alias from the model. MLflow answers an unknown
// alias with success.
func (c *Client) DeleteAlias(ctx context.Context, name, alias string) error {
	return c.send(ctx, http.MethodDelete, "registered-models/alias",
		map[string]string{"name": name, "alias": alias}, nil)
}
