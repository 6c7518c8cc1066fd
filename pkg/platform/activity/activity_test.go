package activity

import (
	"slices"
	"testing"
)

func TestTakeReportsUsedAndInFlightProjectsOnce(t *testing.T) {
	tr := New(nil, nil)
	tr.Touch("1")
	end := tr.Begin("2")
	got := tr.Take()
	slices.Sort(got.IDs)
	if !slices.Equal(got.IDs, []string{"1", "2"}) {
		t.Fatalf("first batch = %v, want [1 2]", got.IDs)
	}
	// "2" still serves a request (a long upload): it stays in every batch, busy.
	if got := tr.Take(); !slices.Equal(got.IDs, []string{"2"}) || !slices.Equal(got.Busy, []string{"2"}) {
		t.Fatalf("second batch = %v busy %v, want [2] busy [2]", got.IDs, got.Busy)
	}
	end()
	end() // twice is harmless
	if got := tr.Take(); !slices.Equal(got.IDs, []string{"2"}) {
		t.Fatalf("batch after the request ended = %v, want [2] (its end is a use)", got.IDs)
	}
	if got := tr.Take(); len(got.IDs) != 0 {
		t.Fatalf("idle batch = %v, want none", got.IDs)
	}
}
