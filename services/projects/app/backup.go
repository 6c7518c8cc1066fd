package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/archive"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// BackupAll writes an export archive of every project that has a
// database into dir/<id>-<name>/ and keeps the newest keep of each. The
// archives are the ones GET /projects/{id}/export streams, so a backup
// is restored with POST /projects/import.
func (m *Mover) BackupAll(ctx context.Context, dir string, keep int) ([]string, error) {
	all, err := m.s.store.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing projects to back up: %w", err)
	}
	var written []string
	var failed []string
	for _, p := range all {
		if ctx.Err() != nil {
			return written, ctx.Err()
		}
		if _, err := os.Stat(filepath.Join(p.Path, archive.DBName)); err != nil {
			continue // never ran: nothing to keep
		}
		path, err := m.Backup(ctx, p, dir, keep)
		if err != nil {
			m.s.log.Error("backing up project", "project", p.ID, "err", err)
			failed = append(failed, p.ID)
			continue
		}
		written = append(written, path)
	}
	if len(failed) > 0 {
		return written, fmt.Errorf("backing up projects %s failed (see the log)", strings.Join(failed, ", "))
	}
	return written, nil
}

// Backup writes one archive of p and prunes the old ones. It writes to a
// .part file renamed at the end, so a listed archive is always whole.
func (m *Mover) Backup(ctx context.Context, p domain.Project, dir string, keep int) (string, error) {
	folder := filepath.Join(dir, p.ID+"-"+p.Name)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return "", fmt.Errorf("backing up project %s: %w", p.ID, err)
	}
	staging, err := m.stage("exports", "backup-")
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(staging, 0o755); err != nil {
		return "", fmt.Errorf("backing up project %s: %w", p.ID, err)
	}
	defer os.RemoveAll(staging)
	plan, err := m.snapshot(ctx, p, staging)
	if err != nil {
		return "", err
	}
	meta, err := os.ReadFile(plan.Meta)
	if err != nil {
		return "", err
	}
	// Microseconds: backups taken in one second must not replace each other.
	final := filepath.Join(folder, p.Name+"-"+time.Now().UTC().Format("20060102T150405.000000Z")+".tar.gz")
	part := final + ".part"
	f, err := os.Create(part)
	if err != nil {
		return "", fmt.Errorf("backing up project %s: %w", p.ID, err)
	}
	err = archive.Write(f, archive.Project{Meta: meta, DB: plan.DB, Artifacts: plan.Artifacts})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, final)
	}
	if err != nil {
		_ = os.Remove(part)
		return "", fmt.Errorf("backing up project %s: %w", p.ID, err)
	}
	return final, prune(folder, keep)
}

// prune keeps the newest keep archives; their names end in a sortable
// UTC time.
func prune(folder string, keep int) error {
	if keep <= 0 {
		return nil
	}
	names, err := filepath.Glob(filepath.Join(folder, "*.tar.gz"))
	if err != nil {
		return err
	}
	sort.Strings(names)
	for len(names) > keep {
		if err := os.Remove(names[0]); err != nil {
			return fmt.Errorf("removing old backup: %w", err)
		}
		names = names[1:]
	}
	return nil
}

// ScheduleBackups backs every project up every interval until ctx ends.
func (m *Mover) ScheduleBackups(ctx context.Context, every time.Duration, dir string, keep int) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			written, err := m.BackupAll(ctx, dir, keep)
			if err != nil && ctx.Err() == nil {
				m.s.log.Error("scheduled backup", "err", err)
			}
			m.s.log.Info("scheduled backup done", "archives", len(written), "dir", dir)
		}
	}
}
