package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// CreateInput is what a user gives to create a project.
type CreateInput struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	IdleTimeout string `json:"idleTimeout"`
	// Backend is sqlite (default) or postgresql (domain.ParseBackend).
	Backend     string `json:"backend"`
	CreatedBy   string `json:"-"`
	CreatedByID string `json:"-"`
	// Source adopts an existing MLflow instead of starting empty (adopt.go).
	Source *Source `json:"source,omitempty"`
}

// Create registers a project, gives it a port for life and makes its
// folder. The server is not started: that is run.
func (s *Service) Create(ctx context.Context, in CreateInput) (domain.Project, error) {
	return s.create(ctx, in, nil)
}

// create is Create with fill, when set, putting the project's files in
// place (an import) before the record exists, so a failure leaves no record.
func (s *Service) create(ctx context.Context, in CreateInput, fill func(p domain.Project) error) (domain.Project, error) {
	if err := domain.ValidateName(in.Name); err != nil {
		return domain.Project{}, errs.AsInvalid(err)
	}
	if err := domain.ValidateDescription(in.Description); err != nil {
		return domain.Project{}, errs.AsInvalid(err)
	}
	if _, _, err := domain.ParseIdleTimeout(in.IdleTimeout); err != nil {
		return domain.Project{}, errs.AsInvalid(err)
	}
	backend, err := domain.ParseBackend(in.Backend)
	if err != nil {
		return domain.Project{}, errs.AsInvalid(err)
	}
	if backend.OnServer() && s.cfg.Databases[backend] == nil {
		example := map[domain.Backend]string{
			domain.BackendPostgreSQL: "postgresql://mlpanel:secret@db:5432/postgres, a role that may create databases",
			domain.BackendMySQL:      "mysql://mlpanel:secret@db:3306/, an account that may create and drop databases",
		}[backend]
		return domain.Project{}, errs.Invalidf(
			"backend %s needs a %s server: set %s (e.g. %s) for the panel, or leave backend out for SQLite",
			backend, backend.Label(), backend.Setting(), example)
	}
	if backend != domain.BackendSQLite && fill != nil {
		return domain.Project{}, errs.Invalidf(
			"a project made from an archive or an existing MLflow keeps its runs in SQLite: leave backend out")
	}
	s.createMu.Lock()
	defer s.createMu.Unlock()

	all, err := s.store.All(ctx)
	if err != nil {
		return domain.Project{}, fmt.Errorf("creating project %s: %w", in.Name, err)
	}
	used := map[int]bool{}
	for _, p := range all {
		if p.Name == in.Name {
			return domain.Project{}, duplicateName(in.Name)
		}
		used[p.Port] = true
	}
	port, err := s.freePort(used)
	if err != nil {
		return domain.Project{}, err
	}
	seq, err := s.store.NextSeq(ctx)
	if err != nil {
		return domain.Project{}, fmt.Errorf("creating project %s: %w", in.Name, err)
	}
	now := s.now()
	p := domain.Project{
		ID: strconv.FormatInt(seq, 10), Seq: seq,
		Name: in.Name, Description: in.Description, IdleTimeout: strings.TrimSpace(in.IdleTimeout),
		Status: domain.StatusTerminated, DesiredState: domain.DesiredStopped,
		Port: port, CreatedBy: in.CreatedBy, CreatedByID: in.CreatedByID, CreatedAt: now, UpdatedAt: now,
		Backend: backend,
	}
	p.Path = filepath.Join(s.cfg.Home, "projects", p.ID)
	p.MlflowURI = s.cfg.AdvertiseURL(p)
	p.InternalURL = s.cfg.InternalURL(p)
	if fill != nil {
		if err := fill(p); err != nil {
			_ = os.RemoveAll(p.Path)
			return domain.Project{}, err
		}
	} else if err := os.MkdirAll(filepath.Join(p.Path, "artifacts"), 0o755); err != nil {
		return domain.Project{}, fmt.Errorf("creating folder of project %s: %w", in.Name, err)
	}
	if p.OnServer() {
		p.Database = databaseName(p.ID)
		if err := s.cfg.Databases[backend].Create(ctx, p.Database); err != nil {
			_ = os.RemoveAll(p.Path)
			return domain.Project{}, fmt.Errorf("creating the %s database of project %s: %w", backend.Label(), in.Name, err)
		}
	}
	if err := s.store.Insert(ctx, p); err != nil {
		_ = os.RemoveAll(p.Path) // nothing refers to it yet
		if p.OnServer() {
			_ = s.cfg.Databases[backend].Drop(context.WithoutCancel(ctx), p.Database)
		}
		if errors.Is(err, ErrDuplicateName) {
			return domain.Project{}, duplicateName(in.Name)
		}
		return domain.Project{}, fmt.Errorf("creating project %s: %w", in.Name, err)
	}
	s.rec.Publish(ctx, p, "created")
	return p, nil
}

// databaseName names a project's database on a server: its id, and a
// random part so that two panels on one database server (or a panel
// whose data home was reset) never share one.
func databaseName(id string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "mlpanel_project_" + id + "_" + hex.EncodeToString(b[:])
}

// freePort is the smallest port of the range that no project owns and no
// other program listens on.
func (s *Service) freePort(used map[int]bool) (int, error) {
	for port := s.cfg.Ports.Lo; port <= s.cfg.Ports.Hi; port++ {
		if !used[port] && proc.PortFree(s.cfg.Host, port) {
			return port, nil
		}
	}
	return 0, errs.Unavailablef("no free port left in MLPANEL_PORT_RANGE %s: delete projects you no longer need or widen the range", s.cfg.Ports)
}
