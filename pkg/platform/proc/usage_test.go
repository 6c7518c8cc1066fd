package proc

import (
	"path/filepath"
	"testing"
	"time"
)

// A group of a shell and its child: both are counted, PSS is at most RSS,
// and CPU time grows when the group works.
func TestGroupUsageCountsTheWholeGroup(t *testing.T) {
	p, err := Start(Spec{Path: "sh", Args: []string{"-c", "sleep 30 & i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; wait"},
		LogFile: filepath.Join(t.TempDir(), "log")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	time.Sleep(1500 * time.Millisecond)
	u, err := GroupUsage(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if u.Processes != 2 {
		t.Fatalf("%d processes in the group, want 2 (sh and sleep)", u.Processes)
	}
	if u.RSSBytes <= 0 || u.PSSBytes <= 0 || u.PSSBytes > u.RSSBytes {
		t.Fatalf("PSS %d, RSS %d: want 0 < PSS <= RSS", u.PSSBytes, u.RSSBytes)
	}
	if u.CPUSeconds <= 0 {
		t.Fatalf("CPU %.2f s after a busy loop, want more than 0", u.CPUSeconds)
	}
	if none, _ := GroupUsage(0); none.Processes != 0 {
		t.Fatalf("group 0: %+v", none)
	}
}
