package domain

import (
	"errors"
	"fmt"
	"mime"
	"net/url"
	"path"
	"strings"
)

// Artifact types of a listing entry.
const (
	TypeFile   = "File"
	TypeFolder = "Folder"
	TypeModel  = "Model" // a folder holding an MLmodel file
)

// MLmodelFile marks a folder as an MLflow model.
const MLmodelFile = "MLmodel"

// Artifact is one entry of a run's artifact folder.
type Artifact struct {
	ID           string `json:"id"` // the path, unique within the run
	ProjectID    string `json:"project_id"`
	ExperimentID string `json:"experiment_id"`
	RunID        string `json:"run_id"`
	RootURI      string `json:"root_uri"`
	Path         string `json:"path"` // relative to the run's artifact root
	Name         string `json:"name"` // the last path element
	Type         string `json:"type"`
	Size         int64  `json:"size"` // bytes; 0 for folders
	// LoggedModelID is set on the entries of MLflow 3 logged models (see
	// LoggedModelsDir).
	LoggedModelID string `json:"logged_model_id,omitempty"`
}

// LoggedModelsDir is the virtual folder under which a run's MLflow 3
// logged models appear in its artifact listing: log_model(name=...)
// stores a model beside the run's artifacts (models:/m-<id>), so without
// it the model would not show. A real artifact folder cannot start with
// '@' in practice; the root listing shows each logged model as
// "@models/<model id>", typed Model.
const LoggedModelsDir = "@models"

// SplitLoggedModelPath tells whether p lies in LoggedModelsDir, and if so
// which logged model (empty for the folder itself) and which path inside
// it (empty for its root).
func SplitLoggedModelPath(p string) (modelID, inside string, ok bool) {
	if p == LoggedModelsDir {
		return "", "", true
	}
	rest, found := strings.CutPrefix(p, LoggedModelsDir+"/")
	if !found {
		return "", "", false
	}
	modelID, inside, _ = strings.Cut(rest, "/")
	return modelID, inside, true
}

// LoggedModelPath is the artifact path of a file inside a logged model.
func LoggedModelPath(modelID, inside string) string {
	if inside == "" {
		return LoggedModelsDir + "/" + modelID
	}
	return LoggedModelsDir + "/" + modelID + "/" + inside
}

// ArtifactSortKeys are the _sort values of artifact listings.
var ArtifactSortKeys = map[string]func(a, b Artifact) bool{
	"id":   func(a, b Artifact) bool { return a.Path < b.Path },
	"path": func(a, b Artifact) bool { return a.Path < b.Path },
	"name": func(a, b Artifact) bool { return a.Name < b.Name },
	"type": func(a, b Artifact) bool { return a.Type < b.Type },
	"size": func(a, b Artifact) bool { return a.Size < b.Size },
}

// ErrUnsafePath is returned for artifact paths that could leave the run's
// artifact folder.
var ErrUnsafePath = errors.New("unsafe artifact path")

// CleanArtifactPath checks a path relative to a run's artifact root and
// returns it without a trailing slash. It rejects what could escape the
// root or be read two ways: absolute paths, '..' and '.' elements, empty
// elements, backslashes, control characters and percent-encoded variants
// of any of them (the path arrives decoded once; a '%' that still decodes
// is an encoding attempt, since a literal '%' followed by two hex digits
// is never needed in an artifact name).
func CleanArtifactPath(p string) (string, error) {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return "", nil
	}
	if err := checkPathLength(p); err != nil {
		return "", err
	}
	for s, i := p, 0; i < 4; i++ {
		if err := checkPlainPath(s); err != nil {
			return "", err
		}
		dec, err := url.PathUnescape(s)
		if err != nil || dec == s {
			break
		}
		s = dec
	}
	return p, nil
}

func checkPlainPath(p string) error {
	switch {
	case strings.HasPrefix(p, "/"):
		return errorf("%q is absolute: give a path relative to the run's artifact root", p)
	case strings.ContainsRune(p, '\\'):
		return errorf("%q contains a backslash: use '/' between folders", p)
	case len(p) >= 2 && p[1] == ':':
		return errorf("%q looks like a drive path: give a path relative to the run's artifact root", p)
	case strings.HasPrefix(p, "~"):
		return errorf("%q starts with '~': give a path relative to the run's artifact root", p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return errorf("%q contains a control character", p)
		}
	}
	for _, el := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		switch el {
		case "..":
			return errorf("%q contains '..': artifact paths stay inside the run's artifact root", p)
		case ".", "":
			return errorf("%q has an empty or '.' element: give a plain path such as reports/data/file.csv", p)
		}
	}
	return nil
}

// Limits of an artifact path, checked before MLflow sees it: MLflow
// answers a longer path with a 500 (the file system's "File name too
// long"). A run's artifact root takes part of the system's 4096-byte
// PATH_MAX; 255 bytes is NAME_MAX of every common file system. The
// OpenAPI document states both (maxLength of the path parameters).
const (
	MaxArtifactPath    = 1024
	MaxArtifactElement = 255
)

// ErrPathTooLong is returned for artifact paths over the limits.
var ErrPathTooLong = errors.New("artifact path too long")

func checkPathLength(p string) error {
	if len(p) > MaxArtifactPath {
		return &lengthError{fmt.Sprintf("artifact path of %d bytes is too long: at most %d bytes", len(p), MaxArtifactPath)}
	}
	for _, el := range strings.Split(p, "/") {
		if len(el) > MaxArtifactElement {
			return &lengthError{fmt.Sprintf("artifact path element %.40q... of %d bytes is too long: at most %d bytes between slashes", el, len(el), MaxArtifactElement)}
		}
	}
	return nil
}

type lengthError struct{ msg string }

func (e *lengthError) Error() string        { return e.msg }
func (e *lengthError) Is(target error) bool { return target == ErrPathTooLong }

type pathError struct{ msg string }

func (e *pathError) Error() string        { return e.msg }
func (e *pathError) Is(target error) bool { return target == ErrUnsafePath }

func errorf(format string, args ...any) error {
	return &pathError{msg: "unsafe artifact path " + fmt.Sprintf(format, args...)}
}

// BaseName is the last element of an artifact path.
func BaseName(p string) string { return path.Base(p) }

// ContentType is the media type a downloaded artifact is served with,
// from its name: the usual ML files first, then the system's table.
func ContentType(name string) string {
	base := path.Base(name)
	switch base {
	case MLmodelFile:
		return "application/yaml"
	case "requirements.txt":
		return "text/plain; charset=utf-8"
	}
	ext := strings.ToLower(path.Ext(base))
	switch ext {
	case ".json":
		return "application/json"
	case ".csv":
		return "text/csv; charset=utf-8"
	case ".txt", ".log", ".md":
		return "text/plain; charset=utf-8"
	case ".yaml", ".yml":
		return "application/yaml"
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".svg":
		return "image/svg+xml"
	case ".parquet", ".pkl", ".pickle", ".skops", ".joblib", ".pt", ".pth", ".onnx", ".h5", ".npy", ".npz", ".bin":
		return "application/octet-stream"
	}
	if t := mime.TypeByExtension(ext); ext != "" && t != "" {
		return t
	}
	return "application/octet-stream"
}
