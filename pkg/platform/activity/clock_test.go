package activity

import (
	"testing"
	"time"
)

// A project or deployment sleeps a timeout after its last use, never
// while a request is in flight, and a late report never moves the clock
// back.
func TestClockDue(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var c Clock
	c.Touch(t0)
	if got := c.Due(time.Minute); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("due %v, want a minute after the last use", got)
	}
	c.Touch(t0.Add(-time.Hour)) // an old report
	if !c.Last().Equal(t0) {
		t.Fatalf("last %v: an older use moved the clock back", c.Last())
	}
	c.Busy(t0.Add(10 * time.Minute))
	if got := c.Due(time.Minute); !got.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("due %v, want no sleep before the busy deadline", got)
	}
	c.Reset(t0.Add(-time.Hour))
	if !c.Last().Equal(t0.Add(-time.Hour)) {
		t.Fatalf("reset to %v", c.Last())
	}
}
