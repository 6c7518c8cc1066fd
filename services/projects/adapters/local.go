package adapters

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// Servers launches and probes tracking servers as child processes of
// this service: MLflowServers (a fresh `mlflow server`, or a fork from
// the zygote), wrapped by mlflowdb.Upgrading to migrate old databases.
type Servers interface {
	// Start launches the tracking server of p (files under p.Path, at
	// p.InternalURL: its Unix socket or its port).
	Start(p domain.Project) (*proc.Process, error)
	// Healthy reports whether the server of p answers /health.
	Healthy(ctx context.Context, p domain.Project) bool
	// LogFile is where the server of p writes its output.
	LogFile(p domain.Project) string
}

// Local is the runtime of MLPANEL_RUNTIME=local: each tracking server is
// a process group on this machine, reached at the socket or port its
// project's internalUrl names, adopted after a restart of the service by
// pid and start time, measured from /proc.
type Local struct {
	Servers Servers
	// Host is where servers bind a TCP port; a port taken by another
	// program fails the start with a message instead of a server that
	// cannot bind.
	Host string
	// StopGrace is how long a server has between SIGTERM and SIGKILL.
	StopGrace time.Duration
}

var _ app.Runtime = (*Local)(nil)

// Start launches the server. A local server's address is fixed by the
// settings, so it is the internalUrl the project already has.
func (l *Local) Start(_ context.Context, p domain.Project) (app.Server, error) {
	if !proc.PortFree(l.Host, p.Port) {
		return nil, fmt.Errorf("port %d is in use by another program: stop it or delete and re-create the project to get another port", p.Port)
	}
	pr, err := l.Servers.Start(p)
	if err != nil {
		return nil, err
	}
	return &localServer{pr: pr, addr: p.InternalURL, grace: l.StopGrace}, nil
}

// Adopt finds the process group recorded on p, if that very process
// (not a reuse of its pid) still runs.
func (l *Local) Adopt(_ context.Context, p domain.Project) (app.Server, error) {
	if p.Pid == 0 {
		return nil, nil
	}
	pr, ok := proc.Adopt(p.Pid, p.PidStart)
	if !ok {
		return nil, nil
	}
	return &localServer{pr: pr, addr: p.InternalURL, grace: l.StopGrace}, nil
}

func (l *Local) Healthy(ctx context.Context, p domain.Project) bool { return l.Servers.Healthy(ctx, p) }

// Logs reads the tail of the server's log file under the project's folder.
func (l *Local) Logs(_ context.Context, p domain.Project, n int) (string, error) {
	text, err := proc.Tail(l.Servers.LogFile(p), n)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return text, err
}

// Usage sums the server's process group (its workers included) from /proc.
func (l *Local) Usage(_ context.Context, p domain.Project) (app.Usage, error) {
	return proc.GroupUsage(p.Pid)
}

// Purge has nothing to do: the service moves a deleted project's folder
// to the trash itself, and a process leaves nothing behind.
func (l *Local) Purge(context.Context, domain.Project) error { return nil }

// localServer is one process group.
type localServer struct {
	pr    *proc.Process
	addr  string
	grace time.Duration
}

func (s *localServer) Observe(context.Context) app.Observation {
	if !s.pr.Alive() {
		return app.Observation{}
	}
	return app.Observation{Alive: true, Address: s.addr}
}

// Stop and Remove are one: a process keeps nothing that would make the
// next start quicker. Both kill the whole group, so no worker keeps the
// port or the socket.
func (s *localServer) Stop(context.Context) error   { return s.pr.Stop(s.grace) }
func (s *localServer) Remove(context.Context) error { return s.pr.Stop(s.grace) }

func (s *localServer) Ref() app.Ref { return app.Ref{Pid: s.pr.Pid, PidStart: s.pr.StartTime} }
