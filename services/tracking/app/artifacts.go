package app

import (
	"context"
	"errors"
	"path"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// cleanPath validates an artifact path from a request.
func cleanPath(p string) (string, error) {
	clean, err := domain.CleanArtifactPath(p)
	if errors.Is(err, domain.ErrUnsafePath) {
		return "", badRequest("%v", err)
	}
	return clean, err
}

// ListArtifacts lists one folder level of a run's artifacts; folders that
// hold an MLmodel file are typed Model.
func (s *Service) ListArtifacts(ctx context.Context, project, runID, dir string, lp events.ListParams) (events.List[domain.Artifact], error) {
	dir, err := cleanPath(dir)
	if err != nil {
		return events.List[domain.Artifact]{}, err
	}
	if strings.TrimSpace(runID) == "" {
		return events.List[domain.Artifact]{}, badRequest("run_id is required: the run whose artifacts to list")
	}
	t, err := s.open(ctx, project)
	if err != nil {
		return events.List[domain.Artifact]{}, err
	}
	r, err := t.run(ctx, runID, false)
	if err != nil {
		return events.List[domain.Artifact]{}, err
	}
	ls, err := t.c.ListArtifacts(ctx, r.ID, dir)
	if err != nil {
		return events.List[domain.Artifact]{}, t.mlflowErr(err)
	}
	if len(ls.Files) == 0 && dir != "" {
		// MLflow lists a file or a missing folder as empty: tell which.
		entry, err := t.entry(ctx, r.ID, dir)
		if err != nil {
			return events.List[domain.Artifact]{}, err
		}
		if !entry.IsDir {
			return events.List[domain.Artifact]{}, badRequest("%q of run %s is a file, not a folder: download it with GET /artifacts/content?project_id=%s&run_id=%s&path=%s",
				dir, r.ID, t.p.ID, r.ID, dir)
		}
	}
	items := make([]domain.Artifact, 0, len(ls.Files))
	for _, f := range ls.Files {
		a := domain.Artifact{
			ID: f.Path, ProjectID: t.p.ID, ExperimentID: r.Info.ExperimentID, RunID: r.ID,
			RootURI: ls.RootURI, Path: f.Path, Name: domain.BaseName(f.Path), Type: domain.TypeFile, Size: f.FileSize,
		}
		if f.IsDir {
			a.Type, a.Size = domain.TypeFolder, 0
			isModel, err := t.isModel(ctx, r.ID, f.Path)
			if err != nil {
				return events.List[domain.Artifact]{}, err
			}
			if isModel {
				a.Type = domain.TypeModel
			}
		}
		items = append(items, a)
	}
	return page(items, lp, domain.ArtifactSortKeys, "path", "artifacts")
}

// isModel reports whether the folder holds an MLmodel file.
func (t target) isModel(ctx context.Context, runID, dir string) (bool, error) {
	ls, err := t.c.ListArtifacts(ctx, runID, dir)
	if err != nil {
		return false, t.mlflowErr(err)
	}
	for _, f := range ls.Files {
		if !f.IsDir && path.Base(f.Path) == domain.MLmodelFile {
			return true, nil
		}
	}
	return false, nil
}

// entry finds one artifact by listing its parent folder; a missing one is
// a 404.
func (t target) entry(ctx context.Context, runID, p string) (mc.FileInfo, error) {
	parent := path.Dir(p)
	if parent == "." {
		parent = ""
	}
	ls, err := t.c.ListArtifacts(ctx, runID, parent)
	if err != nil {
		return mc.FileInfo{}, t.mlflowErr(err)
	}
	for _, f := range ls.Files {
		if f.Path == p {
			return f, nil
		}
	}
	return mc.FileInfo{}, notFound("run %s has no artifact %q: list its artifacts with GET /artifacts?project_id=%s&run_id=%s", runID, p, t.p.ID, runID)
}

// ArtifactLocation tells the gateway where to stream one artifact file
// from; the bytes never ride NATS.
type ArtifactLocation struct {
	ProjectID   string `json:"project_id"`
	RunID       string `json:"run_id"`
	Path        string `json:"path"`
	Name        string `json:"name"`
	URL         string `json:"url"` // GET it from the tracking server
	Size        int64  `json:"size"`
	ContentType string `json:"content_type"`
}

// LocateArtifact checks that p is a file of an active run and says where
// to download it.
func (s *Service) LocateArtifact(ctx context.Context, project, runID, p string) (ArtifactLocation, error) {
	p, err := cleanPath(p)
	if err != nil {
		return ArtifactLocation{}, err
	}
	if p == "" {
		return ArtifactLocation{}, badRequest("path is required: the artifact file to download, relative to the run's artifact root")
	}
	if strings.TrimSpace(runID) == "" {
		return ArtifactLocation{}, badRequest("run_id is required: the run whose artifact to download")
	}
	t, err := s.open(ctx, project)
	if err != nil {
		return ArtifactLocation{}, err
	}
	r, err := t.run(ctx, runID, false)
	if err != nil {
		return ArtifactLocation{}, err
	}
	f, err := t.entry(ctx, r.ID, p)
	if err != nil {
		return ArtifactLocation{}, err
	}
	if f.IsDir {
		return ArtifactLocation{}, badRequest("%q of run %s is a folder: list it with GET /artifacts?project_id=%s&run_id=%s&path=%s", p, r.ID, t.p.ID, r.ID, p)
	}
	return ArtifactLocation{
		ProjectID: t.p.ID, RunID: r.ID, Path: p, Name: domain.BaseName(p),
		URL: t.c.ArtifactURL(r.ID, p), Size: f.FileSize, ContentType: domain.ContentType(p),
	}, nil
}
