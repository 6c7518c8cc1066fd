package app

import (
	"context"
	"net/http"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// A running model server's stats are its runtime's measure; a stopped
// one has none (zeros, measuredBy none); an unknown deployment is 404.
func TestStatsMeasureTheRunningServer(t *testing.T) {
	s, _, _, _ := newTestService(t, 5)
	ctx := context.Background()
	d, err := s.Create(ctx, CreateInput{ProjectID: "1", ModelID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, d.ID, domain.StatusRunning)
	st, err := s.Stats(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != d.ID || st.Status != domain.StatusRunning || st.MeasuredBy != "proc" || st.RSSBytes != 90<<20 || st.PSSBytes != 40<<20 || st.Processes != 2 {
		t.Fatalf("running: %+v", st)
	}
	if _, err := s.Stop(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, d.ID, domain.StatusStopped)
	st, err = s.Stats(ctx, d.ID)
	if err != nil || st.MeasuredBy != MeasuredByNone || st.RSSBytes != 0 || st.Processes != 0 {
		t.Fatalf("stopped: %+v %v, want no measurement", st, err)
	}
	if _, err := s.Stats(ctx, "999"); events.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("stats of an unknown deployment: %v, want 404", err)
	}
}
