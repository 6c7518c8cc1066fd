// Package proc runs the child processes mlpanel supervises (tracking
// servers, model servers): without a shell, each in its own process group,
// output appended to a log file. Stopping kills the whole group, so the
// workers a server forks never outlive it, and a process started by an
// earlier run of the service can be adopted by pid and start time.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spec says what to run.
type Spec struct {
	Path    string   // executable, run directly (no shell, so paths with spaces are safe)
	Args    []string // arguments after Path
	Env     []string // added to the service's environment
	Dir     string   // working directory
	LogFile string   // stdout and stderr are appended here
}

// Process is a running (or finished) process group leader.
type Process struct {
	Pid       int
	StartTime uint64 // clock ticks since boot, from /proc/<pid>/stat; tells a reused pid apart
	done      chan struct{}
	cmd       *exec.Cmd // nil for an adopted process
}

// Start launches spec in a new process group.
func Start(spec Spec) (*Process, error) {
	logf, err := os.OpenFile(spec.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log %s: %w", spec.LogFile, err)
	}
	defer logf.Close() // the child keeps its own descriptor
	fmt.Fprintf(logf, "\n==> %s started %s %s\n", time.Now().UTC().Format(time.RFC3339), spec.Path, strings.Join(spec.Args, " "))

	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", spec.Path, err)
	}
	p := &Process{Pid: cmd.Process.Pid, done: make(chan struct{}), cmd: cmd}
	p.StartTime, _ = startTime(p.Pid)
	go func() {
		_ = cmd.Wait() // reaps the child; its exit status is in the log
		close(p.done)
	}()
	return p, nil
}

// Adopt returns the process with this pid if it is still the one that was
// started at startTime (pids are reused), and false otherwise. An adopted
// process is watched by polling, since it is not our child.
func Adopt(pid int, start uint64) (*Process, bool) {
	if pid <= 0 || start == 0 {
		return nil, false
	}
	got, err := startTime(pid)
	if err != nil || got != start || zombie(pid) {
		return nil, false
	}
	p := &Process{Pid: pid, StartTime: start, done: make(chan struct{})}
	go func() {
		for {
			if got, err := startTime(pid); err != nil || got != start || zombie(pid) {
				close(p.done)
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	return p, true
}

// Done is closed when the group leader has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Alive reports whether the group leader still runs.
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM to the whole group, waits up to grace, then SIGKILLs
// whatever is left, and returns once no member of the group remains. It is
// also the cleanup after a crash: a leader killed with -9 leaves its
// workers behind, holding the port.
func (p *Process) Stop(grace time.Duration) error {
	pgid := p.Pid // the leader's pid is the group id (Setpgid)
	if !groupAlive(pgid) {
		return nil
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	if waitGroupGone(pgid, grace) {
		return nil
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if waitGroupGone(pgid, 10*time.Second) {
		return nil
	}
	return fmt.Errorf("process group %d survived SIGKILL", pgid)
}

func groupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// waitGroupGone polls until no process of the group is left. A leader that
// is our child becomes a zombie until Wait reaps it; signal 0 still
// succeeds for a zombie, so zombies of the group are ignored.
func waitGroupGone(pgid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !groupAlive(pgid) || onlyZombies(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// onlyZombies reports whether every live member of the group is a zombie.
func onlyZombies(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		if st.pgrp == pgid && st.state != "Z" {
			return false
		}
	}
	return true
}

type stat struct {
	state     string
	pgrp      int
	startTime uint64
}

// readStat parses /proc/<pid>/stat. The command name (field 2) may contain
// spaces and parentheses, so fields are counted from the last ')'.
func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 5 is pgrp, field 22 is starttime.
	if len(f) < 20 {
		return stat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	pgrp, _ := strconv.Atoi(f[2])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return stat{state: f[0], pgrp: pgrp, startTime: start}, nil
}

func startTime(pid int) (uint64, error) {
	st, err := readStat(pid)
	return st.startTime, err
}

func zombie(pid int) bool {
	st, err := readStat(pid)
	return err == nil && (st.state == "Z" || st.state == "X")
}

// Attach watches a process another process started for us (a fork of a
// warm interpreter), as Adopt does, recording its start time now. It fails
// when the process has already exited.
func Attach(pid int) (*Process, error) {
	start, err := startTime(pid)
	if err != nil {
		return nil, fmt.Errorf("process %d exited at once: %w", pid, err)
	}
	p, ok := Adopt(pid, start)
	if !ok {
		return nil, fmt.Errorf("process %d exited at once", pid)
	}
	return p, nil
}
