package adapters

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
)

// InputColumns reads the input column names of a model version's
// signature from its MLmodel file, so the gateway can turn the original
// mlpanel's {"data": rows} into a dataframe MLflow's schema check accepts.
// A model without a column signature has none; errors mean "unknown".
func (r *Registry) InputColumns(ctx context.Context, trackingURL, model, version string) ([]string, error) {
	var out struct {
		ArtifactURI string `json:"artifact_uri"`
	}
	code, err := r.get(ctx, trackingURL, "model-versions/get-download-uri", url.Values{"name": {model}, "version": {version}}, &out)
	if err != nil {
		return nil, err
	}
	if code != "" || out.ArtifactURI == "" {
		return nil, fmt.Errorf("no download uri for %s/%s (%s)", model, version, code)
	}
	raw, err := r.readMLmodel(ctx, trackingURL, out.ArtifactURI)
	if err != nil {
		return nil, err
	}
	return signatureColumns(raw)
}

// readMLmodel fetches <artifact uri>/MLmodel through the tracking server's
// artifact proxy, or from disk for a local artifact store.
func (r *Registry) readMLmodel(ctx context.Context, trackingURL, uri string) ([]byte, error) {
	uri = strings.TrimRight(uri, "/")
	switch {
	case strings.HasPrefix(uri, "mlflow-artifacts:"):
		u, err := url.Parse(uri)
		if err != nil {
			return nil, fmt.Errorf("artifact uri %q: %w", uri, err)
		}
		path := strings.TrimLeft(u.Path, "/")
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, sockhttp.Target(trackingURL)+"/api/2.0/mlflow-artifacts/artifacts/"+path+"/MLmodel", nil)
		if err != nil {
			return nil, err
		}
		resp, err := r.Client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("downloading MLmodel: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("downloading MLmodel: HTTP %d", resp.StatusCode)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	case strings.HasPrefix(uri, "file://"):
		return os.ReadFile(strings.TrimPrefix(uri, "file://") + "/MLmodel")
	case strings.HasPrefix(uri, "/"):
		return os.ReadFile(uri + "/MLmodel")
	}
	return nil, fmt.Errorf("artifact uri %q: cannot read MLmodel from this kind of store", uri)
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
