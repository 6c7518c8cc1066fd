package adapters

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/reconcile"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// A project that has run before never starts on a missing database: that
// would show it empty. A new project (no database yet) does start.
func TestStartRefusesAVanishedDatabase(t *testing.T) {
	dir := t.TempDir()
	// No mlflow at this path: a start that gets as far as launching fails
	// with an ordinary, retryable error.
	m := NewMLflowServers(filepath.Join(dir, "no-mlflow"), "127.0.0.1", 1, false)
	p := domain.Project{ID: "1", Name: "alpha", Path: filepath.Join(dir, "alpha"), Port: 1}

	_, err := m.Start(p)
	if err == nil || reconcile.IsTerminal(err) {
		t.Fatalf("first start of a new project: %v, want it launched (and fail only for the missing executable)", err)
	}
	p.RanBefore = true
	_, err = m.Start(p)
	if !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), filepath.Join(p.Path, "mlflow.db")) || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("start after the database vanished: %v, want a terminal error naming mlflow.db and the way back", err)
	}
	if err := os.WriteFile(filepath.Join(p.Path, "mlflow.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = m.Start(p); err == nil || reconcile.IsTerminal(err) {
		t.Fatalf("start with the database back: %v, want it launched", err)
	}
}
