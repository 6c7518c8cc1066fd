package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// withProject loads the project under its lock, so every write to one
// project happens one at a time.
func (s *Service) withProject(ctx context.Context, ref string, fn func(p *domain.Project) error) (domain.Project, error) {
	found, err := s.Find(ctx, ref)
	if err != nil {
		return domain.Project{}, err
	}
	unlock := s.ctl.Lock(found.ID)
	defer unlock()
	p, err := s.store.Get(ctx, found.ID) // re-read under the lock
	if err != nil {
		return domain.Project{}, storeErr(ref, err)
	}
	if err := fn(&p); err != nil {
		return domain.Project{}, err
	}
	return p, nil
}

// Run asks for the tracking server to run and starts it at once; the
// project answers "starting" and turns "running" when /health answers.
func (s *Service) Run(ctx context.Context, ref string) (domain.Project, error) {
	if found, err := s.Find(ctx, ref); err == nil && found.Status != domain.StatusRunning && found.Status != domain.StatusStarting &&
		found.Status != domain.StatusArchived {
		if err := s.makeRoom(ctx, found); err != nil { // sleep.go: MLPANEL_MAX_AWAKE
			return domain.Project{}, err
		}
	}
	return s.withProject(ctx, ref, func(p *domain.Project) error {
		switch {
		case p.Status == domain.StatusArchived:
			return errs.Conflictf("project %s is archived: restore it with PUT /projects/%s/restore first", p.Name, p.ID)
		case p.DesiredState == domain.DesiredRunning && p.Status != domain.StatusFailed && p.Status != domain.StatusSleeping:
			return errs.Conflictf("project %s is already %s", p.Name, p.Status)
		}
		p.DesiredState = domain.DesiredRunning
		p.LastError = ""
		s.rt.Get(p.ID).crashes.Reset() // a user's run retries a failed project now
		if p.Status == domain.StatusSleeping {
			s.rt.Get(p.ID).idle.woke(s.now()) // a run wakes a sleeping project
		}
		if p.Status == domain.StatusFailed || p.Status == domain.StatusSleeping {
			p.Status = domain.StatusTerminated // converge leaves failed and sleeping projects alone
		}
		if err := s.converge(ctx, p); err != nil {
			return err
		}
		if p.Status == domain.StatusFailed {
			// The start cannot succeed (its database is gone): the
			// caller is told why, and the record says so too.
			return errs.Conflictf("%s", p.LastError)
		}
		return nil
	})
}

// Terminate stops the tracking server's whole process group.
func (s *Service) Terminate(ctx context.Context, ref string) (domain.Project, error) {
	return s.withProject(ctx, ref, func(p *domain.Project) error {
		if p.Status == domain.StatusArchived {
			return nil // archived projects are terminated already
		}
		p.DesiredState = domain.DesiredStopped
		return s.converge(ctx, p)
	})
}

// Archive terminates the project and marks it archived; it stays listed.
func (s *Service) Archive(ctx context.Context, ref string) (domain.Project, error) {
	return s.withProject(ctx, ref, func(p *domain.Project) error {
		if p.Status == domain.StatusArchived {
			return errs.Conflictf("project %s is already archived", p.Name)
		}
		p.DesiredState = domain.DesiredStopped
		if err := s.converge(ctx, p); err != nil {
			return err
		}
		p.Status = domain.StatusArchived
		return s.rec.Save(ctx, p, "archived")
	})
}

// Restore returns an archived project to terminated.
func (s *Service) Restore(ctx context.Context, ref string) (domain.Project, error) {
	return s.withProject(ctx, ref, func(p *domain.Project) error {
		if p.Status != domain.StatusArchived {
			return errs.Conflictf("project %s is not archived (status %s): only archived projects can be restored", p.Name, p.Status)
		}
		p.Status = domain.StatusTerminated
		p.LastError = ""
		return s.rec.Save(ctx, p, "restored")
	})
}

// Delete removes a stopped project's record and moves its files to
// Home/trash, so a wrong click loses nothing. The port becomes free.
func (s *Service) Delete(ctx context.Context, ref string) (domain.Project, error) {
	s.createMu.Lock() // frees a name and a port
	defer s.createMu.Unlock()
	return s.withProject(ctx, ref, func(p *domain.Project) error {
		if p.Active() {
			return errs.Conflictf("project %s is %s: terminate it with PUT /projects/%s/terminate before deleting it", p.Name, p.Status, p.ID)
		}
		trash := filepath.Join(s.cfg.Home, "trash")
		if err := os.MkdirAll(trash, 0o755); err != nil {
			return fmt.Errorf("deleting project %s: %w", p.ID, err)
		}
		dest := filepath.Join(trash, fmt.Sprintf("%s-%s-%s", p.ID, p.Name, s.now().Format("20060102T150405Z")))
		moved := true
		if err := os.Rename(p.Path, dest); err != nil {
			if !os.IsNotExist(err) {
				return fmt.Errorf("moving files of project %s to the trash: %w", p.ID, err)
			}
			moved = false
		}
		if err := s.store.Delete(ctx, p.ID); err != nil {
			if moved {
				_ = os.Rename(dest, p.Path) // keep record and files together
			}
			return fmt.Errorf("deleting project %s: %w", p.ID, err)
		}
		s.rt.Forget(p.ID)
		if err := s.runtime.Purge(context.WithoutCancel(ctx), *p); err != nil {
			// The record and files are gone already; what the runtime
			// kept (a volume claim) is named so it can be removed by hand.
			s.log.Error("removing what the runtime kept for a deleted project; remove it by hand", "project", p.ID, "ref", p.RuntimeRef, "err", err)
		}
		if moved {
			p.Path = dest
		}
		if p.OnPostgreSQL() {
			// The record is gone, so the database goes too: a project of
			// the same name made later starts empty, as on SQLite.
			if s.cfg.Databases == nil {
				s.log.Error("cannot drop the PostgreSQL database of a deleted project: MLPANEL_PROJECT_DB_URL is not set; drop it by hand", "project", p.ID, "database", p.Database)
			} else if err := s.cfg.Databases.Drop(context.WithoutCancel(ctx), p.Database); err != nil {
				s.log.Error("dropping the PostgreSQL database of a deleted project; drop it by hand", "project", p.ID, "database", p.Database, "err", err)
			}
		}
		s.rec.Publish(ctx, *p, "deleted")
		return nil
	})
}
