package app

import (
	"context"
	"errors"
	"path"
	"slices"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// cleanPath validates an artifact path from a request.
func cleanPath(p string) (string, error) {
	clean, err := domain.CleanArtifactPath(p)
	if errors.Is(err, domain.ErrUnsafePath) || errors.Is(err, domain.ErrPathTooLong) {
		return "", errs.Invalidf("%v", err)
	}
	return clean, err
}

// tree is one tree of files a run shows: its own artifacts, or one of its
// MLflow 3 logged models (under domain.LoggedModelsDir). Paths given to
// and returned by list are relative to the tree's root.
type tree struct {
	list    func(ctx context.Context, dir string) (mc.ArtifactList, error)
	url     func(p string) string
	modelID string // the logged model, "" for the run's artifacts
}

// full is the mlpanel artifact path of a path relative to the tree.
func (tr tree) full(rel string) string {
	if tr.modelID == "" {
		return rel
	}
	return domain.LoggedModelPath(tr.modelID, rel)
}

// ls lists dir, with every path relative to the tree's root whatever
// form the server answered in.
func (tr tree) ls(ctx context.Context, t target, dir string) (mc.ArtifactList, error) {
	out, err := tr.list(ctx, dir)
	if err != nil {
		return out, t.mlflowErr(err)
	}
	for i, f := range out.Files {
		if dir != "" && !strings.HasPrefix(f.Path, dir+"/") {
			out.Files[i].Path = dir + "/" + path.Base(f.Path)
		}
	}
	return out, nil
}

func (t target) runTree(r domain.Run) tree {
	return tree{
		list: func(ctx context.Context, dir string) (mc.ArtifactList, error) {
			return t.c.ListArtifacts(ctx, r.ID, dir)
		},
		url: func(p string) string { return t.c.ArtifactURL(r.ID, p) },
	}
}

// resolve maps an artifact path of run r to the tree holding it and the
// path inside; modelsDir reports the virtual folder of logged models
// itself.
func (t target) resolve(r domain.Run, p string) (tr tree, rel string, modelsDir bool, err error) {
	id, inside, ok := domain.SplitLoggedModelPath(p)
	switch {
	case !ok:
		return t.runTree(r), p, false, nil
	case id == "":
		return tree{}, "", true, nil
	case !slices.Contains(r.ModelOutputs(), id):
		return tree{}, "", false, errs.NotFoundf("run %s logged no model %q: list its artifacts with GET /artifacts?project_id=%s&run_id=%s", r.ID, id, t.p.ID, r.ID)
	}
	return tree{
		list: func(ctx context.Context, dir string) (mc.ArtifactList, error) {
			return t.c.ListLoggedModelArtifacts(ctx, id, dir)
		},
		url:     func(p string) string { return t.c.LoggedModelArtifactURL(id, p) },
		modelID: id,
	}, inside, false, nil
}

// ListArtifacts lists one folder level of a run's artifacts; folders that
// hold an MLmodel file are typed Model. The root also shows the run's
// MLflow 3 logged models, as Model entries under domain.LoggedModelsDir.
func (s *Service) ListArtifacts(ctx context.Context, project, runID, dir string, lp events.ListParams) (events.List[domain.Artifact], error) {
	dir, err := cleanPath(dir)
	if err != nil {
		return events.List[domain.Artifact]{}, err
	}
	if strings.TrimSpace(runID) == "" {
		return events.List[domain.Artifact]{}, errs.Invalidf("run_id is required: the run whose artifacts to list")
	}
	t, err := s.open(ctx, project)
	if err != nil {
		return events.List[domain.Artifact]{}, err
	}
	r, err := t.run(ctx, runID, false)
	if err != nil {
		return events.List[domain.Artifact]{}, err
	}
	tr, rel, modelsDir, err := t.resolve(r, dir)
	if err != nil {
		return events.List[domain.Artifact]{}, err
	}
	items := []domain.Artifact{}
	if !modelsDir {
		if items, err = t.listTree(ctx, r, tr, rel); err != nil {
			return events.List[domain.Artifact]{}, err
		}
	}
	if dir == "" || modelsDir {
		models, err := t.loggedModels(ctx, r)
		if err != nil {
			return events.List[domain.Artifact]{}, err
		}
		items = append(items, models...)
	}
	return page(items, lp, domain.ArtifactSortKeys, "path", "artifacts")
}

func (t target) listTree(ctx context.Context, r domain.Run, tr tree, rel string) ([]domain.Artifact, error) {
	ls, err := tr.ls(ctx, t, rel)
	if err != nil {
		return nil, err
	}
	if len(ls.Files) == 0 && rel != "" {
		// MLflow lists a file or a missing folder as empty: tell which.
		entry, err := t.entry(ctx, r, tr, rel)
		if err != nil {
			return nil, err
		}
		if !entry.IsDir {
			p := tr.full(rel)
			return nil, errs.Invalidf("%q of run %s is a file, not a folder: download it with GET /artifacts/content?project_id=%s&run_id=%s&path=%s",
				p, r.ID, t.p.ID, r.ID, p)
		}
	}
	items := make([]domain.Artifact, 0, len(ls.Files))
	for _, f := range ls.Files {
		a := domain.Artifact{
			ID: tr.full(f.Path), ProjectID: t.p.ID, ExperimentID: r.Info.ExperimentID, RunID: r.ID,
			RootURI: ls.RootURI, Path: tr.full(f.Path), Name: domain.BaseName(f.Path), Type: domain.TypeFile, Size: f.FileSize,
			LoggedModelID: tr.modelID,
		}
		if f.IsDir {
			a.Type, a.Size = domain.TypeFolder, 0
			isModel, err := t.isModel(ctx, tr, f.Path)
			if err != nil {
				return nil, err
			}
			if isModel {
				a.Type = domain.TypeModel
			}
		}
		items = append(items, a)
	}
	return items, nil
}

// loggedModels are the Model entries of the run's MLflow 3 logged models.
func (t target) loggedModels(ctx context.Context, r domain.Run) ([]domain.Artifact, error) {
	var items []domain.Artifact
	for _, id := range r.ModelOutputs() {
		m, err := t.c.GetLoggedModel(ctx, id)
		if mc.IsCode(err, mc.CodeNotFound) {
			continue // deleted since the run logged it
		}
		if err != nil {
			return nil, t.mlflowErr(err)
		}
		name := m.Name
		if name == "" {
			name = id
		}
		p := domain.LoggedModelPath(id, "")
		items = append(items, domain.Artifact{
			ID: p, ProjectID: t.p.ID, ExperimentID: r.Info.ExperimentID, RunID: r.ID, RootURI: m.ArtifactURI,
			Path: p, Name: name, Type: domain.TypeModel, LoggedModelID: id,
		})
	}
	return items, nil
}

// isModel reports whether the folder holds an MLmodel file.
func (t target) isModel(ctx context.Context, tr tree, dir string) (bool, error) {
	ls, err := tr.ls(ctx, t, dir)
	if err != nil {
		return false, err
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
func (t target) entry(ctx context.Context, r domain.Run, tr tree, rel string) (mc.FileInfo, error) {
	parent := path.Dir(rel)
	if parent == "." {
		parent = ""
	}
	ls, err := tr.ls(ctx, t, parent)
	if err != nil {
		return mc.FileInfo{}, err
	}
	for _, f := range ls.Files {
		if f.Path == rel {
			return f, nil
		}
	}
	return mc.FileInfo{}, errs.NotFoundf("run %s has no artifact %q: list its artifacts with GET /artifacts?project_id=%s&run_id=%s", r.ID, tr.full(rel), t.p.ID, r.ID)
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
		return ArtifactLocation{}, errs.Invalidf("path is required: the artifact file to download, relative to the run's artifact root")
	}
	if strings.TrimSpace(runID) == "" {
		return ArtifactLocation{}, errs.Invalidf("run_id is required: the run whose artifact to download")
	}
	t, err := s.open(ctx, project)
	if err != nil {
		return ArtifactLocation{}, err
	}
	r, err := t.run(ctx, runID, false)
	if err != nil {
		return ArtifactLocation{}, err
	}
	tr, rel, modelsDir, err := t.resolve(r, p)
	if err != nil {
		return ArtifactLocation{}, err
	}
	isDir := modelsDir || (tr.modelID != "" && rel == "")
	if !isDir {
		f, err := t.entry(ctx, r, tr, rel)
		if err != nil {
			return ArtifactLocation{}, err
		}
		isDir = f.IsDir
		if !isDir {
			return ArtifactLocation{
				ProjectID: t.p.ID, RunID: r.ID, Path: p, Name: domain.BaseName(p),
				URL: tr.url(rel), Size: f.FileSize, ContentType: domain.ContentType(p),
			}, nil
		}
	}
	return ArtifactLocation{}, errs.Invalidf("%q of run %s is a folder: list it with GET /artifacts?project_id=%s&run_id=%s&path=%s", p, r.ID, t.p.ID, r.ID, p)
}
