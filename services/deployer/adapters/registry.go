package adapters

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// Registry resolves model versions with a project's MLflow REST API
// directly, so the deployer does not depend on the tracking service.
type Registry struct{ Client *http.Client }

// NewRegistry returns a registry client with a sane timeout.
// Tracking servers listen on Unix sockets when auth is on.
func NewRegistry() *Registry {
	return &Registry{Client: &http.Client{Timeout: 15 * time.Second, Transport: sockhttp.Transport(nil)}}
}

type mlflowError struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

// get calls GET {base}/api/2.0/mlflow/{path}?{q} and decodes the answer.
// It returns the MLflow error code for a 4xx answer.
func (r *Registry) get(ctx context.Context, base, path string, q url.Values, out any) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sockhttp.Target(base)+"/api/2.0/mlflow/"+path+"?"+q.Encode(), nil)
	if err != nil {
		return "", fmt.Errorf("building MLflow request %s: %w", path, err)
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		return "", errs.Upstreamf("the project's tracking server did not answer %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("reading MLflow %s: %w", path, err)
	}
	if resp.StatusCode >= 400 {
		var me mlflowError
		_ = json.Unmarshal(body, &me)
		if me.ErrorCode == "" {
			me.ErrorCode = strconv.Itoa(resp.StatusCode)
		}
		if resp.StatusCode >= 500 {
			return me.ErrorCode, errs.Upstreamf("the project's tracking server failed %s: %s", path, me.Message)
		}
		return me.ErrorCode, nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return "", fmt.Errorf("decoding MLflow %s: %w", path, err)
	}
	return "", nil
}

type modelVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Resolve turns a version number, an alias or "" (the latest) into a
// version number that exists in the registry at trackingURL.
func (r *Registry) Resolve(ctx context.Context, trackingURL, model, version string) (string, error) {
	switch {
	case domain.IsVersionNumber(version):
		var out struct {
			ModelVersion modelVersion `json:"model_version"`
		}
		code, err := r.get(ctx, trackingURL, "model-versions/get", url.Values{"name": {model}, "version": {version}}, &out)
		if err != nil {
			return "", err
		}
		if code != "" {
			if _, err := r.latest(ctx, trackingURL, model); err != nil {
				return "", err // the model itself is unknown
			}
			return "", errs.NotFoundf("registered model %q has no version %s", model, version)
		}
		return out.ModelVersion.Version, nil
	case version != "":
		var out struct {
			ModelVersion modelVersion `json:"model_version"`
		}
		code, err := r.get(ctx, trackingURL, "registered-models/alias", url.Values{"name": {model}, "alias": {version}}, &out)
		if err != nil {
			return "", err
		}
		if code != "" || out.ModelVersion.Version == "" {
			if _, err := r.latest(ctx, trackingURL, model); err != nil {
				return "", err
			}
			return "", errs.NotFoundf("registered model %q has no version %q and no alias %q", model, version, version)
		}
		return out.ModelVersion.Version, nil
	}
	v, err := r.latest(ctx, trackingURL, model)
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", errs.NotFoundf("registered model %q has no versions yet: register one first", model)
	}
	return v, nil
}

// latest returns the highest version of the model ("" when it has none),
// or a 404 when the model does not exist.
func (r *Registry) latest(ctx context.Context, trackingURL, model string) (string, error) {
	var out struct {
		RegisteredModel struct {
			LatestVersions []modelVersion `json:"latest_versions"`
		} `json:"registered_model"`
	}
	code, err := r.get(ctx, trackingURL, "registered-models/get", url.Values{"name": {model}}, &out)
	if err != nil {
		return "", err
	}
	if code != "" {
		return "", errs.NotFoundf("registered model %q not found in the project: list models with GET /registered-models?project_id=...", model)
	}
	best := 0
	for _, v := range out.RegisteredModel.LatestVersions {
		if n, err := strconv.Atoi(v.Version); err == nil && n > best {
			best = n
		}
	}
	if best == 0 {
		return "", nil
	}
	return strconv.Itoa(best), nil
}

// Alias returns the version an alias points to, found false when the
// model has no such alias, and a 404 for an unknown model.
func (r *Registry) Alias(ctx context.Context, trackingURL, model, alias string) (string, bool, error) {
	var out struct {
		ModelVersion modelVersion `json:"model_version"`
	}
	code, err := r.get(ctx, trackingURL, "registered-models/alias", url.Values{"name": {model}, "alias": {alias}}, &out)
	if err != nil {
		return "", false, err
	}
	if code == "" && out.ModelVersion.Version != "" {
		return out.ModelVersion.Version, true, nil
	}
	if _, err := r.latest(ctx, trackingURL, model); err != nil {
		return "", false, err // the model itself is unknown
	}
	return "", false, nil
}
