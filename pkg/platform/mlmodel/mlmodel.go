// Package mlmodel reads a registered model version's MLmodel file (its
// signature, its input example) through the project's tracking server,
// for the deployer and for the registry events of the gateway and the
// tracking service.
package mlmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
)

// ErrVersionGone is a version the registry no longer has.
var ErrVersionGone = errors.New("model version is gone from the registry")

// ErrTrackingServer is a tracking server that did not answer or failed
// (5xx): not the caller's mistake.
var ErrTrackingServer = errors.New("the project's tracking server failed")

// Reader reads MLmodel files; Client dials sockhttp targets (tracking
// servers listen on Unix sockets when auth is on).
type Reader struct{ Client *http.Client }

// DownloadURI is where a version's files are. MLflow resolves every kind
// of source (runs:/, models:/ of a logged model, a storage path) to it.
func (r Reader) DownloadURI(ctx context.Context, trackingURL, model, version string) (string, error) {
	q := url.Values{"name": {model}, "version": {version}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		strings.TrimRight(sockhttp.Target(trackingURL), "/")+"/api/2.0/mlflow/model-versions/get-download-uri?"+q.Encode(), nil)
	if err != nil {
		return "", fmt.Errorf("building the download uri request of %s/%s: %w", model, version, err)
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: get-download-uri did not answer: %v", ErrTrackingServer, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading get-download-uri of %s/%s: %w", model, version, err)
	}
	var out struct {
		ArtifactURI string `json:"artifact_uri"`
		ErrorCode   string `json:"error_code"`
		Message     string `json:"message"`
	}
	_ = json.Unmarshal(body, &out)
	switch {
	case out.ErrorCode == "RESOURCE_DOES_NOT_EXIST":
		return "", fmt.Errorf("version %s of %q: %w", version, model, ErrVersionGone)
	case resp.StatusCode >= 500:
		return "", fmt.Errorf("%w: get-download-uri of %s/%s: HTTP %d %s", ErrTrackingServer, model, version, resp.StatusCode, out.Message)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("get-download-uri of %s/%s: HTTP %d %s %s", model, version, resp.StatusCode, out.ErrorCode, out.Message)
	case out.ArtifactURI == "":
		return "", fmt.Errorf("no download uri for %s/%s", model, version)
	}
	return out.ArtifactURI, nil
}

// Read fetches the MLmodel file of a version and the artifact URI of its
// folder (where its input example is).
func (r Reader) Read(ctx context.Context, trackingURL, model, version string) (raw []byte, uri string, err error) {
	if uri, err = r.DownloadURI(ctx, trackingURL, model, version); err != nil {
		return nil, "", err
	}
	if raw, err = r.Artifact(ctx, trackingURL, uri, "MLmodel"); err != nil {
		return nil, uri, fmt.Errorf("reading the MLmodel file of %s/%s: %w", model, version, err)
	}
	return raw, uri, nil
}

// Artifact fetches <artifact uri>/<name> through the tracking server's
// artifact proxy, or from disk for a local artifact store.
func (r Reader) Artifact(ctx context.Context, trackingURL, uri, name string) ([]byte, error) {
	uri = strings.TrimRight(uri, "/")
	switch {
	case strings.HasPrefix(uri, "mlflow-artifacts:"):
		u, err := url.Parse(uri)
		if err != nil {
			return nil, fmt.Errorf("artifact uri %q: %w", uri, err)
		}
		path := strings.TrimLeft(u.Path, "/")
		req, err := http.NewRequestWithContext(ctx, http.MethodGet,
			strings.TrimRight(sockhttp.Target(trackingURL), "/")+"/api/2.0/mlflow-artifacts/artifacts/"+path+"/"+url.PathEscape(name), nil)
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

// EventWait bounds reading a new version's signature for its
// version_created event: the event goes without it rather than hold up
// the client's write behind a slow or unreadable artifact store.
const EventWait = 3 * time.Second

// Signature reads a version's signature; nil when it has none.
func (r Reader) Signature(ctx context.Context, trackingURL, model, version string) (*Signature, error) {
	raw, _, err := r.Read(ctx, trackingURL, model, version)
	if err != nil {
		return nil, err
	}
	return ParseSignature(raw)
}

// Signature is an MLmodel signature as MLflow writes it: each part is
// the JSON text MLflow stores, absent when the model has none.
type Signature struct {
	Inputs  json.RawMessage `json:"inputs,omitempty"`
	Outputs json.RawMessage `json:"outputs,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// ParseSignature is the signature block of an MLmodel file; nil when the
// model was logged without one.
func ParseSignature(mlmodel []byte) (*Signature, error) {
	var doc struct {
		Signature struct {
			Inputs  string `yaml:"inputs"`
			Outputs string `yaml:"outputs"`
			Params  string `yaml:"params"`
		} `yaml:"signature"`
	}
	if err := yaml.Unmarshal(mlmodel, &doc); err != nil {
		return nil, fmt.Errorf("parsing MLmodel: %w", err)
	}
	s := Signature{}
	for _, p := range []struct {
		text string
		dst  *json.RawMessage
		part string
	}{{doc.Signature.Inputs, &s.Inputs, "inputs"}, {doc.Signature.Outputs, &s.Outputs, "outputs"}, {doc.Signature.Params, &s.Params, "params"}} {
		if p.text == "" || p.text == "null" {
			continue
		}
		if !json.Valid([]byte(p.text)) {
			return nil, fmt.Errorf("parsing MLmodel signature %s: not JSON", p.part)
		}
		*p.dst = json.RawMessage(p.text)
	}
	if s.Inputs == nil && s.Outputs == nil && s.Params == nil {
		return nil, nil
	}
	return &s, nil
}

// InputColumns are the names of a column-based input schema; none for a
// model without a signature or with a tensor schema (it takes arrays).
func InputColumns(mlmodel []byte) ([]string, error) {
	s, err := ParseSignature(mlmodel)
	if err != nil || s == nil || s.Inputs == nil {
		return nil, err
	}
	var specs []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(s.Inputs, &specs); err != nil {
		return nil, fmt.Errorf("parsing MLmodel signature: %w", err)
	}
	var cols []string
	for _, sp := range specs {
		if sp.Name == "" || sp.Type == "tensor" {
			return nil, nil
		}
		cols = append(cols, sp.Name)
	}
	return cols, nil
}
