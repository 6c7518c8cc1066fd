package mlflowdb

import (
	"context"
	"fmt"
	"os/exec"
	"sync"

	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
	"github.com/mlpanel/mlpanel/services/projects/app"
)

// Tool is app.MLflowDB over this package and the panel's mlflow.
type Tool struct {
	Mlflow string // the mlflow executable; its python reads the revisions

	mu     sync.Mutex
	pinned *app.Pinned
	revs   mlflowschema.Cache // live databases' revisions
}

func (t *Tool) Snapshot(ctx context.Context, src, dst string) error { return Snapshot(ctx, src, dst) }
func (t *Tool) Revision(ctx context.Context, path string) (string, error) {
	return Revision(ctx, path)
}
func (t *Tool) CurrentRevision(ctx context.Context, path string) (string, error) {
	return t.revs.Revision(ctx, path)
}
func (t *Tool) Relocate(ctx context.Context, path, from, to string) (int64, error) {
	return Relocate(ctx, path, from, to)
}
func (t *Tool) Upgrade(ctx context.Context, path string) (string, error) {
	return Upgrade(ctx, t.Mlflow, path)
}

// Pinned asks MLflow once: the executable does not change under a
// running service.
func (t *Tool) Pinned(ctx context.Context) (app.Pinned, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pinned != nil {
		return *t.pinned, nil
	}
	p, err := ReadPinned(ctx, t.Mlflow)
	if err != nil {
		return app.Pinned{}, err
	}
	t.pinned = &app.Pinned{Version: p.Version, Head: p.Head, Revisions: p.Revisions}
	return *t.pinned, nil
}

// MigrateFileStore runs `mlflow migrate-filestore` from the mlruns file
// store under root (it only reads it) into a new SQLite database at db.
func (t *Tool) MigrateFileStore(ctx context.Context, root, db string) (string, error) {
	out, err := exec.CommandContext(ctx, t.Mlflow, "migrate-filestore", "--source", root, "--target", "sqlite:///"+db, "--no-progress").CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("mlflow migrate-filestore: %w", err)
	}
	return string(out), nil
}
