package adapters

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/embedded/embeddedtest"
	"github.com/mlpanel/mlpanel/services/deployer/app"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// TestMongoStore runs the deployments store against embedded FerretDB,
// the database the embedded default uses.
func TestMongoStore(t *testing.T) {
	ctx := context.Background()
	s := NewMongoStore(embeddedtest.Database(t, "mlpanel_test"))

	seq1, _ := s.NextSeq(ctx)
	seq2, err := s.NextSeq(ctx)
	if err != nil || seq1 != 1 || seq2 != 2 {
		t.Fatalf("NextSeq gave %d then %d (%v), want 1 then 2", seq1, seq2, err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := domain.Deployment{ID: "1", Seq: 1, ProjectID: "4", ModelID: "iris", Version: "2", ModelURI: "models:/iris/2",
		Type: domain.TypeLocal, DesiredState: domain.DesiredRunning, Status: domain.StatusPending,
		InputColumns: []string{"a", "b"}, CreatedAt: now, UpdatedAt: now}
	b := a
	b.ID, b.Seq = "2", 2
	for _, d := range []domain.Deployment{b, a} {
		if err := s.Insert(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, "1")
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, a)
	}
	got.Status, got.Stage, got.Pid, got.PidStart, got.Error = domain.StatusStarting, domain.Stage("pulling"), 42, 99, "why"
	if err := s.Replace(ctx, got); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Get(ctx, "1"); !reflect.DeepEqual(again, got) {
		t.Fatalf("Replace did not persist: %+v, want %+v", again, got)
	}
	all, err := s.All(ctx)
	if err != nil || len(all) != 2 || all[0].ID != "1" || all[1].ID != "2" {
		t.Fatalf("All = %+v, %v; want both, ordered by id number", all, err)
	}
	if _, err := s.Get(ctx, "9"); !errors.Is(err, app.ErrNotFound) {
		t.Fatalf("Get of an unknown id: %v, want ErrNotFound", err)
	}
	ghost := a
	ghost.ID = "9"
	if err := s.Replace(ctx, ghost); !errors.Is(err, app.ErrNotFound) {
		t.Fatalf("Replace of an unknown id: %v, want ErrNotFound", err)
	}
}
