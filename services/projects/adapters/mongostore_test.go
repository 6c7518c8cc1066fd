package adapters

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/embedded/embeddedtest"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// TestMongoStore runs the store against embedded FerretDB, the database
// the embedded default uses.
func TestMongoStore(t *testing.T) {
	ctx := context.Background()
	s, err := NewMongoStore(ctx, embeddedtest.Database(t, "mlpanel_test"))
	if err != nil {
		t.Fatal(err)
	}

	seq1, _ := s.NextSeq(ctx)
	seq2, err := s.NextSeq(ctx)
	if err != nil || seq1 != 1 || seq2 != 2 {
		t.Fatalf("NextSeq gave %d then %d (%v), want 1 then 2", seq1, seq2, err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := domain.Project{ID: "1", Seq: 1, Name: "alpha", Port: 5000, Status: domain.StatusTerminated, CreatedAt: now, UpdatedAt: now}
	b := domain.Project{ID: "2", Seq: 2, Name: "beta", Port: 5001, Status: domain.StatusTerminated, CreatedAt: now, UpdatedAt: now}
	for _, p := range []domain.Project{b, a} {
		if err := s.Insert(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	dup := a
	dup.ID, dup.Seq = "3", 3
	if err := s.Insert(ctx, dup); !errors.Is(err, app.ErrDuplicateName) {
		t.Fatalf("inserting a duplicate name: %v, want ErrDuplicateName", err)
	}
	got, err := s.GetByName(ctx, "alpha")
	if err != nil || got.ID != "1" || !got.CreatedAt.Equal(now) {
		t.Fatalf("GetByName = %+v, %v", got, err)
	}
	got.Status, got.Pid, got.PidStart = domain.StatusRunning, 42, 99
	if err := s.Replace(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Get(ctx, "1"); got.Pid != 42 || got.PidStart != 99 || got.Status != domain.StatusRunning {
		t.Fatalf("Replace did not persist: %+v", got)
	}
	renamed := got
	renamed.Name = "beta"
	if err := s.Replace(ctx, renamed); !errors.Is(err, app.ErrDuplicateName) {
		t.Fatalf("renaming onto another name: %v, want ErrDuplicateName", err)
	}
	all, err := s.All(ctx)
	if err != nil || len(all) != 2 || all[0].ID != "1" || all[1].ID != "2" {
		t.Fatalf("All = %+v, %v; want both, ordered by id number", all, err)
	}
	if err := s.Delete(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "2"); !errors.Is(err, app.ErrNotFound) {
		t.Fatalf("Get after delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "2"); !errors.Is(err, app.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}
