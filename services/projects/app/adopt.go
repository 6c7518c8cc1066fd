package app

import (
	"context"

	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/platform/archive"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// Source is an existing MLflow to bring under the panel: its backend
// store (a SQLite database or an mlruns file store) and its artifacts.
type Source struct {
	BackendStoreURI string `json:"backend_store_uri"`
	ArtifactRoot    string `json:"artifact_root"`
}

// FileStoreMigrator turns an mlruns file store into a SQLite database
// with MLflow's own tooling.
type FileStoreMigrator interface {
	MigrateFileStore(ctx context.Context, root, db string) (string, error)
}

// CreateOrAdopt is create: from scratch, or, with a source, from an
// existing MLflow. Only admins may name a source (restricted callers are
// not admins), and only under MLPANEL_IMPORT_ROOT: it reads server files.
func (m *Mover) CreateOrAdopt(ctx context.Context, in CreateInput, restricted bool) (domain.Project, error) {
	if in.Source == nil {
		return m.s.Create(ctx, in)
	}
	if restricted {
		return domain.Project{}, errs.Forbiddenf("only admins may create a project from an existing MLflow (source)")
	}
	if b, err := domain.ParseBackend(in.Backend); err != nil || b != domain.BackendSQLite {
		return domain.Project{}, errs.Invalidf("a project adopted from an existing MLflow (source) keeps its runs in SQLite: leave backend out")
	}
	if err := domain.ValidateName(in.Name); err != nil {
		return domain.Project{}, errs.AsInvalid(err)
	}
	db, fileStore, err := m.sourceStore(in.Source.BackendStoreURI)
	if err != nil {
		return domain.Project{}, err
	}
	arts, err := m.underRoot("artifact_root", in.Source.ArtifactRoot, true)
	if err != nil {
		return domain.Project{}, err
	}
	staging, err := m.stage("imports", "adopt-")
	if err != nil {
		return domain.Project{}, err
	}
	defer os.RemoveAll(staging)
	if err := os.Mkdir(staging, 0o755); err != nil {
		return domain.Project{}, fmt.Errorf("adopting %s: %w", in.Source.BackendStoreURI, err)
	}
	target := filepath.Join(staging, archive.DBName)
	if fileStore {
		mig, ok := m.db.(FileStoreMigrator)
		if !ok {
			return domain.Project{}, errs.Invalidf("this panel cannot migrate file stores: give a SQLite backend_store_uri")
		}
		if out, err := mig.MigrateFileStore(ctx, db, target); err != nil {
			return domain.Project{}, errs.Invalidf("MLflow could not migrate the file store %s into SQLite: %v; last lines:\n%s", db, err, lastLines(out, 20))
		}
	} else if err := m.db.Snapshot(ctx, db, target); err != nil {
		// A read-only copy: the source database is never written.
		return domain.Project{}, errs.Invalidf("cannot read %s as an SQLite database: %v", db, err)
	}
	if err := copyTree(arts, filepath.Join(staging, archive.ArtifactsDir)); err != nil {
		return domain.Project{}, fmt.Errorf("copying artifacts from %s: %w", arts, err)
	}
	meta := Meta{Format: archive.Format, ArtifactRoot: arts}
	return m.adopt(ctx, staging, meta, ImportInput{Name: in.Name, Description: &in.Description, CreatedBy: in.CreatedBy})
}

// sourceStore reads backend_store_uri: sqlite:///<file> or a folder
// (plain, or file://) holding an mlruns file store.
func (m *Mover) sourceStore(uri string) (path string, fileStore bool, err error) {
	switch {
	case uri == "":
		return "", false, errs.Invalidf("source.backend_store_uri is required: sqlite:///<path of mlflow.db> or the path of an mlruns folder")
	case strings.HasPrefix(uri, "sqlite:///"):
		p, err := m.underRoot("backend_store_uri", strings.TrimPrefix(uri, "sqlite:///"), false)
		return p, false, err
	case strings.Contains(uri, "://") && !strings.HasPrefix(uri, "file://"):
		return "", false, errs.Invalidf("source.backend_store_uri %q: only sqlite:/// databases and mlruns folders can be adopted", uri)
	}
	p, err := m.underRoot("backend_store_uri", uri, true)
	return p, true, err
}

// underRoot resolves a path or file:// URI and insists that it lies
// inside MLPANEL_IMPORT_ROOT once links are followed.
func (m *Mover) underRoot(field, p string, dir bool) (string, error) {
	if m.importRoot == "" {
		return "", errs.Invalidf("adopting an existing MLflow is off: set MLPANEL_IMPORT_ROOT to the folder its files may come from")
	}
	if strings.HasPrefix(p, "file://") {
		u, err := url.Parse(p)
		if err != nil {
			return "", errs.Invalidf("source.%s %q is not a valid file:// URI", field, p)
		}
		p = u.Path
	}
	root, err := filepath.EvalSymlinks(m.importRoot)
	if err != nil {
		return "", fmt.Errorf("MLPANEL_IMPORT_ROOT %s: %w", m.importRoot, err)
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(p))
	if err != nil || !filepath.IsAbs(p) || !inside(root, real) {
		return "", errs.Invalidf("source.%s %q is not an existing absolute path under MLPANEL_IMPORT_ROOT (%s)", field, p, m.importRoot)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", errs.Invalidf("source.%s %q: %v", field, p, err)
	}
	if st.IsDir() != dir {
		what := "a file"
		if dir {
			what = "a folder"
		}
		return "", errs.Invalidf("source.%s %q must be %s", field, p, what)
	}
	return real, nil
}
