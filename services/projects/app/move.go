package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/archive"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// MLflowDB works on copies of project databases with the pinned MLflow.
type MLflowDB interface {
	// Snapshot copies a live database consistently.
	Snapshot(ctx context.Context, src, dst string) error
	// Revision is a database's alembic schema revision.
	Revision(ctx context.Context, path string) (string, error)
	// CurrentRevision is Revision of a project's live database, read
	// again only when the file changed.
	CurrentRevision(ctx context.Context, path string) (string, error)
	// Relocate moves the artifact locations recorded under from to to.
	Relocate(ctx context.Context, path, from, to string) (int64, error)
	// Pinned is the panel's MLflow version and the revisions it knows.
	Pinned(ctx context.Context) (Pinned, error)
	// Upgrade runs MLflow's own migration and returns its log.
	Upgrade(ctx context.Context, path string) (string, error)
}

// Pinned is the MLflow the panel runs.
type Pinned struct {
	Version   string   `json:"version"`
	Head      string   `json:"head"`
	Revisions []string `json:"revisions"`
}

// Check is what a database at rev means to the pinned MLflow.
func (p Pinned) Check(rev string) mlflowschema.Status {
	return mlflowschema.Check(rev, p.Head, p.Revisions)
}

// Mover exports, imports and clones projects. It shares the service's
// locks, so an imported project gets its name and port like any other.
type Mover struct {
	s  *Service
	db MLflowDB
	// importRoot is the only folder under which admins may name
	// server-side archives; empty refuses every server-side path.
	importRoot string
	// Deployments, when set, answers the deployment definitions of a
	// project (the deployer owns them), which an export carries along.
	Deployments func(ctx context.Context, projectID string) (json.RawMessage, error)
}

// NewMover builds the mover over s.
func NewMover(s *Service, db MLflowDB, importRoot string) *Mover {
	return &Mover{s: s, db: db, importRoot: importRoot}
}

// Meta is export.json: what a project was, for the panel that imports it.
type Meta struct {
	Format  string `json:"format"`
	Project struct {
		ID          string    `json:"id"`
		Name        string    `json:"name"`
		Description string    `json:"description"`
		CreatedBy   string    `json:"createdBy,omitempty"`
		CreatedAt   time.Time `json:"createdAt"`
	} `json:"project"`
	MlflowVersion  string `json:"mlflowVersion"`
	SchemaRevision string `json:"schemaRevision"`
	// ArtifactRoot is the folder the artifact locations in the database
	// point into, so an import can move them to its own folder.
	ArtifactRoot string    `json:"artifactRoot"`
	ExportedAt   time.Time `json:"exportedAt"`
	// Deployments are the project's deployment definitions when exported,
	// for reference: an import does not start model servers.
	Deployments json.RawMessage `json:"deployments,omitempty"`
	// Members are the project's members by user name and role. The
	// gateway owns them: it adds them to an export and restores them
	// after an import (Imported.ArchiveMembers); this service carries
	// them untouched.
	Members json.RawMessage `json:"members,omitempty"`
}

// Imported is a project made from an archive, with the members the
// archive named, for the gateway to restore (it answers the caller with
// what it restored and skipped instead).
type Imported struct {
	domain.Project
	ArchiveMembers json.RawMessage `json:"archiveMembers,omitempty"`
}

// ExportPlan tells the gateway which files make the archive. The
// gateway streams them itself: bytes never ride NATS.
type ExportPlan struct {
	Filename  string `json:"filename"`
	Dir       string `json:"dir"` // the staging folder; release it with export.release
	Meta      string `json:"meta"`
	DB        string `json:"db"`
	Artifacts string `json:"artifacts"`
}

// servedArtifacts is the scheme of artifacts a project's server serves
// from its artifact folder (mlflow server --serve-artifacts).
const servedArtifacts = "mlflow-artifacts:"

// staleAfter is when a staging folder that nobody released is removed
// (a gateway that died mid-transfer).
const staleAfter = 24 * time.Hour

func (m *Mover) area(kind string) string { return filepath.Join(m.s.cfg.Home, kind) }

// stage makes a fresh folder under Home/<kind> and sweeps stale ones.
func (m *Mover) stage(kind, prefix string) (string, error) {
	root := m.area(kind)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("making %s: %w", root, err)
	}
	if ents, err := os.ReadDir(root); err == nil {
		for _, e := range ents {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleAfter {
				_ = os.RemoveAll(filepath.Join(root, e.Name()))
			}
		}
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return filepath.Join(root, prefix+hex.EncodeToString(b)), nil
}

// inside reports whether path lies under root once both are cleaned.
func inside(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..") && !filepath.IsAbs(rel)
}

// Export takes a consistent snapshot of the project's database while its
// server runs and writes export.json beside it.
func (m *Mover) Export(ctx context.Context, ref string) (ExportPlan, error) {
	p, err := m.s.Find(ctx, ref)
	if err != nil {
		return ExportPlan{}, err
	}
	dir, err := m.stage("exports", p.ID+"-")
	if err != nil {
		return ExportPlan{}, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return ExportPlan{}, fmt.Errorf("exporting project %s: %w", p.ID, err)
	}
	plan, err := m.snapshot(ctx, p, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return ExportPlan{}, err
	}
	return plan, nil
}

func (m *Mover) snapshot(ctx context.Context, p domain.Project, dir string) (ExportPlan, error) {
	if p.OnServer() {
		tool := map[domain.Backend]string{domain.BackendPostgreSQL: "pg_dump", domain.BackendMySQL: "mariadb-dump (mysqldump)"}[p.Backend]
		return ExportPlan{}, errs.Conflictf("project %s keeps its runs in %s (database %s): export and clone take SQLite projects only for now; back it up with %s", p.Name, p.Backend.Label(), p.Database, tool)
	}
	src := filepath.Join(p.Path, archive.DBName)
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return ExportPlan{}, errs.Conflictf("project %s has no MLflow database yet: run it once (PUT /projects/%s/run) before exporting it", p.Name, p.ID)
	}
	plan := ExportPlan{
		Filename:  fmt.Sprintf("%s-%s.tar.gz", p.Name, m.s.now().Format("20060102T150405Z")),
		Dir:       dir,
		Meta:      filepath.Join(dir, archive.MetaName),
		DB:        filepath.Join(dir, archive.DBName),
		Artifacts: filepath.Join(p.Path, archive.ArtifactsDir),
	}
	if err := m.db.Snapshot(ctx, src, plan.DB); err != nil {
		return ExportPlan{}, fmt.Errorf("exporting project %s: %w", p.ID, err)
	}
	rev, err := m.db.Revision(ctx, plan.DB)
	if err != nil {
		return ExportPlan{}, err
	}
	pinned, err := m.db.Pinned(ctx)
	if err != nil {
		return ExportPlan{}, err
	}
	meta := Meta{Format: archive.Format, MlflowVersion: pinned.Version, SchemaRevision: rev,
		ArtifactRoot: plan.Artifacts, ExportedAt: m.s.now()}
	meta.Project.ID, meta.Project.Name, meta.Project.Description = p.ID, p.Name, p.Description
	meta.Project.CreatedBy, meta.Project.CreatedAt = p.CreatedBy, p.CreatedAt
	if m.Deployments != nil {
		deps, err := m.Deployments(ctx, p.ID)
		if err != nil {
			// The archive is whole without them; say so in the log.
			m.s.log.Warn("export without deployment definitions", "project", p.ID, "err", err)
		}
		meta.Deployments = deps
	}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return ExportPlan{}, err
	}
	if err := os.WriteFile(plan.Meta, b, 0o644); err != nil {
		return ExportPlan{}, fmt.Errorf("exporting project %s: %w", p.ID, err)
	}
	return plan, nil
}

// Release removes an export's staging folder once the archive is sent.
func (m *Mover) Release(_ context.Context, dir string) (struct{}, error) {
	if !inside(m.area("exports"), filepath.Clean(dir)) {
		return struct{}{}, errs.Invalidf("%q is not an export staging folder", dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return struct{}{}, fmt.Errorf("releasing %s: %w", dir, err)
	}
	return struct{}{}, nil
}

// UploadSlot is where the gateway writes an uploaded archive.
type UploadSlot struct {
	Upload string `json:"upload"`
}

// Slot names a fresh file for one upload.
func (m *Mover) Slot(context.Context) (UploadSlot, error) {
	path, err := m.stage("imports", "upload-")
	if err != nil {
		return UploadSlot{}, err
	}
	return UploadSlot{Upload: path + ".tar.gz"}, nil
}

// ImportInput names the archive and the new project.
type ImportInput struct {
	// Upload is a slot the gateway filled; Path an archive on the server
	// under MLPANEL_IMPORT_ROOT (admins only, checked by the gateway).
	Upload      string  `json:"upload"`
	Path        string  `json:"path"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
	CreatedBy   string  `json:"-"`
}

// Import creates a new project from an archive: new id, port and name,
// the database moved to the new artifact folder, the MLflow schema
// brought to the pinned revision. A refused archive leaves nothing.
func (m *Mover) Import(ctx context.Context, in ImportInput) (Imported, error) {
	meta, p, err := m.importArchive(ctx, in)
	if err != nil {
		return Imported{}, err
	}
	return Imported{Project: p, ArchiveMembers: meta.Members}, nil
}

func (m *Mover) importArchive(ctx context.Context, in ImportInput) (Meta, domain.Project, error) {
	src, cleanup, err := m.source(in)
	if err != nil {
		return Meta{}, domain.Project{}, err
	}
	defer cleanup()
	if in.Name != "" {
		if err := domain.ValidateName(in.Name); err != nil {
			return Meta{}, domain.Project{}, errs.AsInvalid(err)
		}
	}
	f, err := os.Open(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Meta{}, domain.Project{}, errs.Invalidf("no archive at %s: give a file under MLPANEL_IMPORT_ROOT", in.Path)
		}
		return Meta{}, domain.Project{}, fmt.Errorf("opening archive: %w", err)
	}
	defer f.Close()
	staging, err := m.stage("imports", "extract-")
	if err != nil {
		return Meta{}, domain.Project{}, err
	}
	defer os.RemoveAll(staging) // moved away on success
	raw, err := archive.Extract(f, staging)
	if err != nil {
		var inv *archive.InvalidError
		if errors.As(err, &inv) {
			return Meta{}, domain.Project{}, errs.Invalidf("%s", inv.Error())
		}
		return Meta{}, domain.Project{}, err
	}
	var meta Meta
	if err := json.Unmarshal(raw, &meta); err != nil || meta.Format != archive.Format {
		return Meta{}, domain.Project{}, errs.Invalidf("invalid project archive: %s is not an mlpanel export (format %q, want %q)", archive.MetaName, meta.Format, archive.Format)
	}
	if in.Description == nil {
		in.Description = &meta.Project.Description
	}
	p, err := m.adopt(ctx, staging, meta, in)
	return meta, p, err
}

// source resolves where the archive is and what to remove afterwards.
func (m *Mover) source(in ImportInput) (string, func(), error) {
	switch {
	case in.Upload != "" && in.Path != "":
		return "", nil, errs.Invalidf("give either an uploaded archive or a server-side path, not both")
	case in.Upload != "":
		up := filepath.Clean(in.Upload)
		if !inside(m.area("imports"), up) {
			return "", nil, errs.Invalidf("%q is not an upload slot", in.Upload)
		}
		return up, func() { _ = os.Remove(up) }, nil
	case in.Path != "":
		if m.importRoot == "" {
			return "", nil, errs.Invalidf("server-side imports are off: set MLPANEL_IMPORT_ROOT to the folder archives may come from, or upload the archive")
		}
		p, err := filepath.EvalSymlinks(filepath.Clean(in.Path))
		root, rerr := filepath.EvalSymlinks(m.importRoot)
		if err != nil || rerr != nil || !inside(root, p) {
			return "", nil, errs.Invalidf("no archive %q under MLPANEL_IMPORT_ROOT (%s): give a file inside that folder", in.Path, m.importRoot)
		}
		return p, func() {}, nil
	}
	return "", nil, errs.Invalidf("no archive: upload a .tar.gz made by GET /projects/{id}/export as the request body")
}

// adopt turns an extracted archive (or a clone's copy) in staging into a
// new project.
func (m *Mover) adopt(ctx context.Context, staging string, meta Meta, in ImportInput) (domain.Project, error) {
	db := filepath.Join(staging, archive.DBName)
	rev, err := m.db.Revision(ctx, db)
	if err != nil {
		return domain.Project{}, errs.Invalidf("invalid project archive: %s is not a readable MLflow database: %v", archive.DBName, err)
	}
	pinned, err := m.db.Pinned(ctx)
	if err != nil {
		return domain.Project{}, err
	}
	switch pinned.Check(rev) {
	case mlflowschema.Empty:
		return domain.Project{}, errs.Invalidf("invalid project archive: %s has no MLflow schema revision", archive.DBName)
	case mlflowschema.Unknown:
		return domain.Project{}, errs.Invalidf("the archive's database is at schema revision %s (MLflow %s), which this panel's MLflow %s does not know: import it into a panel with that MLflow or newer",
			rev, meta.MlflowVersion, pinned.Version)
	case mlflowschema.Older:
		if out, err := m.db.Upgrade(ctx, db); err != nil {
			return domain.Project{}, errs.Invalidf("the archive's database (MLflow %s, revision %s) could not be migrated to MLflow %s: %v; last lines:\n%s",
				meta.MlflowVersion, rev, pinned.Version, err, lastLines(out, 20))
		}
	}
	name := in.Name
	if name == "" {
		name = meta.Project.Name
	}
	desc := ""
	if in.Description != nil {
		desc = *in.Description
	}
	return m.s.create(ctx, CreateInput{Name: name, Description: desc, CreatedBy: in.CreatedBy}, func(p domain.Project) error {
		arts := filepath.Join(staging, archive.ArtifactsDir)
		if err := os.MkdirAll(arts, 0o755); err != nil {
			return fmt.Errorf("importing into project %s: %w", p.ID, err)
		}
		// Locations under the old artifact folder become mlflow-artifacts:
		// ones, which the project's server resolves in its own artifact
		// folder, so remote clients download them through it too.
		if meta.ArtifactRoot != "" {
			if _, err := m.db.Relocate(ctx, db, meta.ArtifactRoot, servedArtifacts); err != nil {
				return fmt.Errorf("importing into project %s: %w", p.ID, err)
			}
		}
		_ = os.Remove(filepath.Join(staging, archive.MetaName))
		if err := os.MkdirAll(filepath.Dir(p.Path), 0o755); err != nil {
			return fmt.Errorf("importing into project %s: %w", p.ID, err)
		}
		if err := os.Rename(staging, p.Path); err != nil {
			return fmt.Errorf("importing into project %s: %w", p.ID, err)
		}
		return nil
	})
}

// CloneInput names the copy.
type CloneInput struct {
	Name        string  `json:"name"`
	Description *string `json:"description"`
	CreatedBy   string  `json:"-"`
}

// Clone copies a project into a new one on this panel: a snapshot of its
// database and a copy of its artifacts, as an export then an import would.
func (m *Mover) Clone(ctx context.Context, ref string, in CloneInput) (domain.Project, error) {
	if err := domain.ValidateName(in.Name); err != nil {
		return domain.Project{}, errs.AsInvalid(err)
	}
	p, err := m.s.Find(ctx, ref)
	if err != nil {
		return domain.Project{}, err
	}
	staging, err := m.stage("imports", "clone-")
	if err != nil {
		return domain.Project{}, err
	}
	defer os.RemoveAll(staging)
	if err := os.Mkdir(staging, 0o755); err != nil {
		return domain.Project{}, fmt.Errorf("cloning project %s: %w", p.ID, err)
	}
	plan, err := m.snapshot(ctx, p, staging)
	if err != nil {
		return domain.Project{}, err
	}
	raw, err := os.ReadFile(plan.Meta)
	if err != nil {
		return domain.Project{}, err
	}
	var meta Meta
	if err := json.Unmarshal(raw, &meta); err != nil {
		return domain.Project{}, err
	}
	if err := copyTree(plan.Artifacts, filepath.Join(staging, archive.ArtifactsDir)); err != nil {
		return domain.Project{}, fmt.Errorf("cloning project %s: %w", p.ID, err)
	}
	if in.Description == nil {
		in.Description = &p.Description
	}
	return m.adopt(ctx, staging, meta, ImportInput{Name: in.Name, Description: in.Description, CreatedBy: in.CreatedBy})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Described is a project with the MLflow that serves it and the schema
// revision its database is at, so users see what an upgrade did.
type Described struct {
	domain.Project
	MlflowVersion  string `json:"mlflowVersion,omitempty"`
	SchemaRevision string `json:"schemaRevision,omitempty"`
}

// Describe is Find plus the MLflow version and the schema revision, read
// from the database itself (read-only, one row) when its file changed.
func (m *Mover) Describe(ctx context.Context, ref string) (Described, error) {
	p, err := m.s.Find(ctx, ref)
	if err != nil {
		return Described{}, err
	}
	d := Described{Project: p}
	if pinned, err := m.db.Pinned(ctx); err == nil {
		d.MlflowVersion = pinned.Version
	}
	db := filepath.Join(p.Path, archive.DBName)
	if _, err := os.Stat(db); err == nil {
		if rev, err := m.db.CurrentRevision(ctx, db); err == nil {
			d.SchemaRevision = rev
		}
	}
	return d, nil
}
