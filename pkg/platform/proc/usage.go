package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Usage is what a process group costs right now.
type Usage struct {
	Processes int
	// PSS counts each page shared between processes once (split among
	// them), so the PSS of a group is what the group really adds; RSS
	// counts shared pages in every process that maps them.
	PSSBytes, RSSBytes int64
	// CPUSeconds is user plus system time of the group's live processes
	// and of the children they have reaped.
	CPUSeconds float64
	// CPUPercent is CPU use now, in percent of one core, where the
	// measure is a rate rather than a total (a cluster engine's stats);
	// 0 from /proc.
	CPUPercent float64
	// MeasuredBy names what took the figures (MeasuredByProc for
	// GroupUsage), so a reader knows which of them mean anything.
	MeasuredBy string
}

// MeasuredByProc: PSS, RSS and CPU seconds summed over a process group
// from /proc.
const MeasuredByProc = "proc"

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc times on
// every architecture it runs on.
const clockTicks = 100

// GroupUsage sums memory (from /proc/<pid>/smaps_rollup) and CPU time
// over every process in process group pgid. A process that exits while
// it is read is skipped.
func GroupUsage(pgid int) (Usage, error) {
	u := Usage{MeasuredBy: MeasuredByProc}
	if pgid <= 0 {
		return u, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return u, fmt.Errorf("listing processes: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		group, cpu, ok := statOf(pid)
		if !ok || group != pgid {
			continue
		}
		pss, rss, ok := memoryOf(pid)
		if !ok {
			continue
		}
		u.Processes++
		u.CPUSeconds += cpu
		u.PSSBytes += pss
		u.RSSBytes += rss
	}
	return u, nil
}

// statOf reads the process group and CPU seconds from /proc/<pid>/stat.
func statOf(pid int) (pgrp int, cpu float64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, false
	}
	var ticks int64
	for _, k := range f[11:15] { // utime, stime, cutime, cstime
		n, _ := strconv.ParseInt(k, 10, 64)
		ticks += n
	}
	return pgrp, float64(ticks) / clockTicks, true
}

// memoryOf reads Pss and Rss from /proc/<pid>/smaps_rollup.
func memoryOf(pid int) (pss, rss int64, ok bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "Pss:":
			pss = kb << 10
		case "Rss:":
			rss = kb << 10
		}
	}
	return pss, rss, sc.Err() == nil
}
