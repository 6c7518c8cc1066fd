package e2e

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// TestHungTrackingServerIsUnhealthy: a server whose process lives but no
// longer answers /health (SIGSTOP) is shown as unhealthy, with an event,
// not as running; once it answers again (SIGCONT) it is running again.
func TestHungTrackingServerIsUnhealthy(t *testing.T) {
	p := runningProject(t, "hung-e2e")
	t.Cleanup(func() { call(t, http.MethodPut, "/projects/"+p.ID+"/terminate", nil) })
	sub, err := panel.NC.SubscribeSync(events.Subject("project", p.ID, "unhealthy"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	if err := syscall.Kill(-p.Pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stopping the server's process group %d: %v", p.Pid, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-p.Pid, syscall.SIGCONT) })
	hung := waitProject(t, p.ID, "unhealthy", time.Minute)
	if hung.Pid != p.Pid || hung.LastError == "" {
		t.Fatalf("unhealthy project %+v: want the same pid and a reason in lastError", hung)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no unhealthy event: %v", err)
	}
	ev, err := events.Decode(msg.Data)
	if err != nil || ev.Type != "io.mlpanel.project.unhealthy" {
		t.Fatalf("unhealthy event %+v, %v", ev, err)
	}

	if err := syscall.Kill(-p.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	back := waitProject(t, p.ID, "running", time.Minute)
	if back.Pid != p.Pid || back.LastError != "" {
		t.Fatalf("recovered project %+v: want the same process running, no error", back)
	}
}
