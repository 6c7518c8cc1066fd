package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/mlmodel"
	"github.com/mlpanel/mlpanel/services/deployer/app"
)

// InputColumns reads the input column names of a model version's
// signature from its MLmodel file, so the gateway can turn the original
// mlpanel's {"data": rows} into a dataframe MLflow's schema check accepts.
// A model without a column signature has none; errors mean "unknown".
func (r *Registry) InputColumns(ctx context.Context, trackingURL, model, version string) ([]string, error) {
	raw, _, err := r.readMLmodel(ctx, trackingURL, model, version)
	if err != nil {
		return nil, err
	}
	return mlmodel.InputColumns(raw)
}

// Schema reads a version's signature and input example from its MLmodel
// file, as the original mlpanel's GET /deployments/{id}/schema showed them.
func (r *Registry) Schema(ctx context.Context, trackingURL, model, version string) (app.ModelSchema, error) {
	raw, uri, err := r.readMLmodel(ctx, trackingURL, model, version)
	if err != nil {
		return app.ModelSchema{}, err
	}
	sig, err := mlmodel.ParseSignature(raw)
	if err != nil {
		return app.ModelSchema{}, fmt.Errorf("the MLmodel file of %s/%s: %w", model, version, err)
	}
	var doc struct {
		Example struct {
			Path string `yaml:"artifact_path"`
		} `yaml:"saved_input_example_info"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return app.ModelSchema{}, fmt.Errorf("parsing the MLmodel file of %s/%s: %w", model, version, err)
	}
	if sig == nil {
		sig = &mlmodel.Signature{}
	}
	s := app.ModelSchema{Inputs: orNull(sig.Inputs), Outputs: orNull(sig.Outputs), Params: orNull(sig.Params)}
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
	raw, uri, err := r.readMLmodel(ctx, trackingURL, model, version)
	if err != nil {
		return nil, err
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

// orNull is a signature part, or null for none (the schema shows every part).
func orNull(part json.RawMessage) json.RawMessage {
	if part == nil {
		return json.RawMessage("null")
	}
	return part
}

// readMLmodel fetches a version's MLmodel file and its folder's URI; a
// version the registry no longer has is not found.
func (r *Registry) readMLmodel(ctx context.Context, trackingURL, model, version string) ([]byte, string, error) {
	raw, uri, err := mlmodel.Reader{Client: r.Client}.Read(ctx, trackingURL, model, version)
	if errors.Is(err, mlmodel.ErrVersionGone) {
		return nil, "", errs.NotFoundf("version %s of registered model %q is gone from the project's registry", version, model)
	}
	if errors.Is(err, mlmodel.ErrTrackingServer) {
		return nil, "", errs.Upstreamf("%v", err)
	}
	return raw, uri, err
}

// readArtifact fetches a file of the version's folder.
func (r *Registry) readArtifact(ctx context.Context, trackingURL, uri, name string) ([]byte, error) {
	return mlmodel.Reader{Client: r.Client}.Artifact(ctx, trackingURL, uri, name)
}
