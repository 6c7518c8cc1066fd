package mlflowdb

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// startsRecorder records whether a project had its database when its
// server would have started.
type startsRecorder struct{ hadDB map[string]bool }

func (s *startsRecorder) Start(p domain.Project) (*proc.Process, error) {
	_, err := os.Stat(filepath.Join(p.Path, "mlflow.db"))
	s.hadDB[p.ID] = err == nil
	return nil, errors.New("not started in this test")
}
func (s *startsRecorder) Healthy(context.Context, domain.Project) bool { return false }
func (s *startsRecorder) LogFile(domain.Project) string                { return os.DevNull }

// A new project starts from a copy of one empty database MLflow made at
// the pinned head; a project that ran before and lost its database gets
// none (that loss is reported, not hidden).
func TestNewProjectsStartFromMLflowsEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rec := &startsRecorder{hadDB: map[string]bool{}}
	u := &Upgrading{Servers: rec, Tool: &Tool{Mlflow: conf.DefaultMlflow()}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		TemplateDir: filepath.Join(dir, "templates")}
	pinned, err := u.Tool.Pinned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2"} {
		p := domain.Project{ID: id, Path: filepath.Join(dir, id)}
		_, _ = u.Start(p)
		rev, err := Revision(ctx, filepath.Join(p.Path, "mlflow.db"))
		if !rec.hadDB[id] || err != nil || rev != pinned.Head {
			t.Fatalf("project %s: database before start %v, revision %q (%v), want MLflow's head %s", id, rec.hadDB[id], rev, err, pinned.Head)
		}
		if ix := panelIndexes(t, filepath.Join(p.Path, "mlflow.db")); len(ix) != len(mlflowschema.Indexes) {
			t.Fatalf("project %s starts with the indexes %v, want every one of mlflowschema.Indexes", id, ix)
		}
	}
	if tpls, _ := filepath.Glob(filepath.Join(dir, "templates", "*.db")); len(tpls) != 1 {
		t.Fatalf("templates %v, want one made once", tpls)
	}
	lost := domain.Project{ID: "3", Path: filepath.Join(dir, "3"), RanBefore: true}
	_, _ = u.Start(lost)
	if rec.hadDB["3"] {
		t.Fatal("a project that lost its database was given an empty one")
	}
}
