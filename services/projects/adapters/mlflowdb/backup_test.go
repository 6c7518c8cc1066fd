package mlflowdb_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/archive"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/embedded"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/adapters"
	"github.com/mlpanel/mlpanel/services/projects/adapters/mlflowdb"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

type noEvents struct{}

func (noEvents) Publish(context.Context, string, string, string, any) (events.Event, error) {
	return events.Event{}, nil
}

// TestScheduledBackupsAreExportsWithRetention: every project with a
// database gets an archive an import accepts, and only the newest keep
// stay. The store is the embedded FerretDB; the database is MLflow's own.
func TestScheduledBackupsAreExportsWithRetention(t *testing.T) {
	ctx := context.Background()
	f, err := embedded.StartFerretDB(ctx, t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	client, err := boot.Mongo(ctx, f.URI())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	store, err := adapters.NewMongoStore(ctx, client.Database("backup_test"))
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	url := func(p domain.Project) string { return "http://127.0.0.1/" + p.ID }
	svc := app.New(app.Config{Home: home, Ports: proc.Range{Lo: 15390, Hi: 15399}, Host: "127.0.0.1", AdvertiseURL: url, InternalURL: url},
		store, nil, noEvents{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tool := &mlflowdb.Tool{Mlflow: conf.DefaultMlflow()}
	mover := app.NewMover(svc, tool, "")

	ran, err := svc.Create(ctx, app.CreateInput{Name: "ran"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create(ctx, app.CreateInput{Name: "never-ran"}); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(ran.Path, "mlflow.db")
	if out, err := mlflowdb.Upgrade(ctx, tool.Mlflow, db); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(ran.Path, "artifacts", "a.txt"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "backups")
	var last []string
	for i := 0; i < 3; i++ {
		if last, err = mover.BackupAll(ctx, dir, 2); err != nil {
			t.Fatal(err)
		}
	}
	if len(last) != 1 || !strings.Contains(last[0], ran.ID+"-ran") {
		t.Fatalf("backed up %v, want one archive of the project that ran", last)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, ran.ID+"-ran", "*"))
	if len(kept) != 2 || kept[1] != last[0] {
		t.Errorf("kept %v, want the newest 2 archives", kept)
	}
	if ents, _ := os.ReadDir(filepath.Join(home, "exports")); len(ents) != 0 {
		t.Errorf("backups left %d staging folders", len(ents))
	}
	raw, err := os.ReadFile(last[0])
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x")
	if _, err := archive.Extract(bytes.NewReader(raw), out); err != nil {
		t.Fatalf("a backup is not an archive an import accepts: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "artifacts", "a.txt")); string(b) != "kept" {
		t.Errorf("artifact in the backup: %q", b)
	}

	// Import the backup back: a new project with the same database.
	slot, err := mover.Slot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(slot.Upload, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	restored, err := mover.Import(ctx, app.ImportInput{Upload: slot.Upload, Name: "restored"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(restored.Path, "artifacts", "a.txt")); string(b) != "kept" {
		t.Errorf("artifact after the import: %q", b)
	}
	if _, err := os.Stat(slot.Upload); !os.IsNotExist(err) {
		t.Errorf("the import left its upload behind")
	}
}
