package adapters

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
	"github.com/mlpanel/mlpanel/services/deployer/app"
)

// InputColumns reads the input column names of a model version's
// signature from its MLmodel file, so the gateway can turn the original
// mlpanel's {"data": rows} into a dataframe MLflow's schema check accepts.
// A model without a column signature has none; errors mean "unknown".
func (r *Registry) InputColumns(ctx context.Context, trackingURL, model, version string) ([]string, error) {
	uri, err := r.downloadURI(ctx, trackingURL, model, version)
	if err != nil {
		return nil, err
	}
	raw, err := r.readMLmodel(ctx, trackingURL, uri)
	if err != nil {
		return nil, err
	}
	return signatureColumns(raw)
}

// downloadURI is where a version's files are.
func (r *Registry) downloadURI(ctx context.Context, trackingURL, model, version string) (string, error) {
	var out struct {
		ArtifactURI string `json:"artifact_uri"`
	}
	code, err := r.get(ctx, trackingURL, "model-versions/get-download-uri", url.Values{"name": {model}, "version": {version}}, &out)
	if err != nil {
		return "", err
	}
	if code == "RESOURCE_DOES_NOT_EXIST" {
		return "", errs.NotFoundf("version %s of registered model %q is gone from the project's registry", version, model)
	}
	if code != "" || out.ArtifactURI == "" {
		return "", fmt.Errorf("no download uri for %s/%s (%s)", model, version, code)
	}
	return out.ArtifactURI, nil
}

// Schema reads a version's signature and input example from its MLmodel
// file, as the original mlpanel's GET /deployments/{id}/schema showed them.
func (r *Registry) Schema(ctx context.Context, trackingURL, model, version string) (app.ModelSchema, error) {
	uri, err := r.downloadURI(ctx, trackingURL, model, version)
	if err != nil {
		return app.ModelSchema{}, err
	}
	raw, err := r.readMLmodel(ctx, trackingURL, uri)
	if err != nil {
		return app.ModelSchema{}, fmt.Errorf("reading the MLmodel file of %s/%s: %w", model, version, err)
	}
	var doc struct {
		Signature struct {
			Inputs  string `yaml:"inputs"`
			Outputs string `yaml:"outputs"`
			Params  string `yaml:"params"`
		} `yaml:"signature"`
		Example struct {
			Path string `yaml:"artifact_path"`
		} `yaml:"saved_input_example_info"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return app.ModelSchema{}, fmt.Errorf("parsing the MLmodel file of %s/%s: %w", model, version, err)
	}
	s := app.ModelSchema{
		Inputs:  jsonOrNull(doc.Signature.Inputs),
		Outputs: jsonOrNull(doc.Signature.Outputs),
		Params:  jsonOrNull(doc.Signature.Params),
	}
	s.InputExample = json.RawMessage("null")
	if doc.Example.Path != "" {
		ex, err := r.readArtifact(ctx, trackingURL, uri, doc.Example.Path)
		if err != nil {
			return app.ModelSchema{}, fmt.Errorf("reading the input example of %s/%s: %w", model, version, err)
		}
		if json.Valid(ex) {
			s.InputExample = ex
		}
	}
	return s, nil
}

// ServingExample is the body /invocations accepts for the version's input
// example: MLflow saves it beside the example (serving_input_path); an
// older model's example is wrapped in the format its type needs. nil when
// the version was logged without an example.
func (r *Registry) ServingExample(ctx context.Context, trackingURL, model, version string) ([]byte, error) {
	uri, err := r.downloadURI(ctx, trackingURL, model, version)
	if err != nil {
		return nil, err
	}
	raw, err := r.readMLmodel(ctx, trackingURL, uri)
	if err != nil {
		return nil, fmt.Errorf("reading the MLmodel file of %s/%s: %w", model, version, err)
	}
	var doc struct {
		Example struct {
			Path        string `yaml:"artifact_path"`
			ServingPath string `yaml:"serving_input_path"`
			Type        string `yaml:"type"`
		} `yaml:"saved_input_example_info"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parsing the MLmodel file of %s/%s: %w", model, version, err)
	}
	ex := doc.Example
	if ex.ServingPath != "" {
		body, err := r.readArtifact(ctx, trackingURL, uri, ex.ServingPath)
		if err != nil {
			return nil, fmt.Errorf("reading the serving input example of %s/%s: %w", model, version, err)
		}
		return body, nil
	}
	if ex.Path == "" {
		return nil, nil
	}
	body, err := r.readArtifact(ctx, trackingURL, uri, ex.Path)
	if err != nil {
		return nil, fmt.Errorf("reading the input example of %s/%s: %w", model, version, err)
	}
	if !json.Valid(body) {
		return nil, nil // not JSON (an image, a file): /ping only
	}
	key := "inputs"
	if ex.Type == "dataframe" {
		key = "dataframe_split"
	}
	return json.Marshal(map[string]json.RawMessage{key: body})
}

// jsonOrNull keeps a JSON text from MLmodel, or null for none.
func jsonOrNull(s string) json.RawMessage {
	if s == "" || s == "null" || !json.Valid([]byte(s)) {
		return json.RawMessage("null")
	}
	return json.RawMessage(s)
}

// readMLmodel fetches <artifact uri>/MLmodel.
func (r *Registry) readMLmodel(ctx context.Context, trackingURL, uri string) ([]byte, error) {
	return r.readArtifact(ctx, trackingURL, uri, "MLmodel")
}

// readArtifact fetches <artifact uri>/<name> through the tracking server's
// artifact proxy, or from disk for a local artifact store.
func (r *Registry) readArtifact(ctx context.Context, trackingURL, uri, name string) ([]byte, error) {
	uri = strings.TrimRight(uri, "/")
	switch {
	case strings.HasPrefix(uri, "mlflow-artifacts:"):
		u, err := url.Parse(uri)
		if err != nil {
			return nil, fmt.Errorf("artifact uri %q: %w", uri, err)
		}
		path := strings.TrimLeft(u.Path, "/")
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, sockhttp.Target(trackingURL)+"/api/2.0/mlflow-artifacts/artifacts/"+path+"/"+url.PathEscape(name), nil)
		if err != nil {
			return nil, err
		}
		resp, err := r.Client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("downloading %s: %w", name, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("downloading %s: HTTP %d", name, resp.StatusCode)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	case strings.HasPrefix(uri, "file://"):
		return os.ReadFile(filepath.Join(strings.TrimPrefix(uri, "file://"), name))
	case strings.HasPrefix(uri, "/"):
		return os.ReadFile(filepath.Join(uri, name))
	}
	return nil, fmt.Errorf("artifact uri %q: cannot read %s from this kind of store", uri, name)
}

// signatureColumns returns the names of a column-based input schema.
func signatureColumns(mlmodel []byte) ([]string, error) {
	var doc struct {
		Signature struct {
			Inputs string `yaml:"inputs"`
		} `yaml:"signature"`
	}
	if err := yaml.Unmarshal(mlmodel, &doc); err != nil {
		return nil, fmt.Errorf("parsing MLmodel: %w", err)
	}
	if doc.Signature.Inputs == "" {
		return nil, nil
	}
	var specs []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(doc.Signature.Inputs), &specs); err != nil {
		return nil, fmt.Errorf("parsing MLmodel signature: %w", err)
	}
	var cols []string
	for _, s := range specs {
		if s.Name == "" || s.Type == "tensor" {
			return nil, nil // a tensor schema takes plain arrays
		}
		cols = append(cols, s.Name)
	}
	return cols, nil
}
