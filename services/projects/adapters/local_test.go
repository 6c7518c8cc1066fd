package adapters

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/servertest"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// shellServers runs a real process group per "server": a shell that
// prints a line and forks a worker, as gunicorn would.
type shellServers struct{ dir string }

func (s shellServers) Start(p domain.Project) (*proc.Process, error) {
	return proc.Start(proc.Spec{Path: "sh", Args: []string{"-c", "echo serving " + p.ID + "; sleep 60 & wait"}, LogFile: s.LogFile(p)})
}
func (shellServers) Healthy(context.Context, domain.Project) bool { return true }
func (s shellServers) LogFile(p domain.Project) string {
	return filepath.Join(s.dir, p.ID+".log")
}

// The local runtime is today's processes behind the seam: a start
// reports the project's own address and a pid to adopt by, Stop and
// Remove kill the whole group, a restarted service adopts the live
// group (and not a pid reused by another process), logs and usage come
// from the log file and /proc, and a port taken by another program is a
// start error that says so.
func TestLocalRuntimeRunsProcessGroups(t *testing.T) {
	dir := t.TempDir()
	l := &Local{Servers: shellServers{dir}, Host: "127.0.0.1", StopGrace: time.Second}
	ctx := context.Background()
	p := domain.Project{ID: "7", Port: servertest.FreePort(t), InternalURL: "http://127.0.0.1:1/projects/7/mlflow"}

	srv, err := l.Start(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Remove(ctx) })
	if obs := srv.Observe(ctx); !obs.Alive || obs.Address != p.InternalURL || obs.Restarts != 0 {
		t.Fatalf("observed %+v, want alive at the project's internalUrl", obs)
	}
	ref := srv.Ref()
	if ref.Pid == 0 || ref.PidStart == 0 || ref.Name != "" {
		t.Fatalf("ref %+v, want a pid and its start time", ref)
	}
	p.Pid, p.PidStart = ref.Pid, ref.PidStart
	deadline := time.Now().Add(5 * time.Second)
	for {
		u, err := l.Usage(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		logs, _ := l.Logs(ctx, p, 5)
		if u.Processes == 2 && u.RSSBytes > 0 && strings.Contains(logs, "serving 7") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage %+v, logs %q: want the shell and its worker, and its output", u, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}

	adopted, err := l.Adopt(ctx, p)
	if err != nil || adopted == nil || adopted.Ref() != ref || !adopted.Observe(ctx).Alive {
		t.Fatalf("adopt of the live group: %v, %v", adopted, err)
	}
	if other, err := l.Adopt(ctx, domain.Project{ID: "8", Pid: ref.Pid, PidStart: ref.PidStart + 1}); other != nil || err != nil {
		t.Fatalf("adopt of a reused pid: %v, %v; want nothing", other, err)
	}
	if none, err := l.Adopt(ctx, domain.Project{ID: "9"}); none != nil || err != nil {
		t.Fatalf("adopt of a project without a server: %v, %v", none, err)
	}

	if err := adopted.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if u, _ := proc.GroupUsage(ref.Pid); u.Processes != 0 {
		t.Fatalf("%d processes of the group left after Stop, want none", u.Processes)
	}
	deadline = time.Now().Add(5 * time.Second)
	for srv.Observe(ctx).Alive {
		if time.Now().After(deadline) {
			t.Fatal("the started handle still reports the stopped server alive")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := srv.Remove(ctx); err != nil {
		t.Fatalf("remove of a server already gone: %v, want nil", err)
	}
	if logs, err := l.Logs(ctx, domain.Project{ID: "never"}, 5); logs != "" || err != nil {
		t.Fatalf("logs of a server that never ran: %q, %v", logs, err)
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p.Port = taken.Addr().(*net.TCPAddr).Port
	if srv, err := l.Start(ctx, p); err == nil || !strings.Contains(err.Error(), "in use by another program") {
		if srv != nil {
			_ = srv.Remove(ctx)
		}
		t.Fatalf("start on a taken port: %v, want an error that says so", err)
	}
}
