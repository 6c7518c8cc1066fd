package proc

import (
	"testing"
	"time"
)

func TestCrashesBackOffAndReset(t *testing.T) {
	var c Crashes
	now := time.Unix(1000, 0)
	if !c.Ready(now) {
		t.Fatal("a process that never crashed must be ready")
	}
	var waits []time.Duration
	for i := 0; i < 8; i++ {
		waits = append(waits, c.Record(now))
	}
	if c.Count != 8 {
		t.Fatalf("Count = %d", c.Count)
	}
	if waits[0] < 900*time.Millisecond || waits[0] > 1100*time.Millisecond {
		t.Errorf("first wait %s, want about 1s", waits[0])
	}
	if waits[1] < waits[0] || waits[2] < waits[1] {
		t.Errorf("waits do not grow: %v", waits)
	}
	if last := waits[len(waits)-1]; last > 33*time.Second || last < 27*time.Second {
		t.Errorf("wait after 8 crashes %s, want about the 30s cap", last)
	}
	if c.Ready(now) || !c.Ready(now.Add(waits[len(waits)-1])) {
		t.Error("Ready must be false until NextStart and true from then on")
	}
	c.Reset()
	if c.Count != 0 || !c.Ready(now) {
		t.Fatal("Reset must forget the crashes")
	}
	if w := c.Record(now); w > 1100*time.Millisecond {
		t.Errorf("after Reset the first wait is %s, want about 1s", w)
	}
}
