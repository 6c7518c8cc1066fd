package app

import (
	"context"
	"errors"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// Runtime runs the projects' tracking servers: child processes of this
// service (adapters.Local, MLPANEL_RUNTIME=local), Nomad jobs or
// Kubernetes Deployments. Everything above it (states, crash backoff,
// sleep and wake, MLPANEL_MAX_AWAKE, events, stats) is the same whatever
// runs the servers; /work/wt/notes/runtime-seam.md and README "Runtimes"
// spell out the contract. Implementations are safe for concurrent use.
type Runtime interface {
	// Start launches the server of p and returns without waiting for it
	// to answer. It is idempotent per project: when the runtime already
	// runs a server for p (left by a service that died mid-start) it
	// returns that one, brought in line with p, never a second copy. A
	// start that retrying cannot fix is reconcile.Terminal (the project
	// fails at once); any other error counts as a crash and is retried
	// with backoff. On error nothing of this start keeps running.
	Start(ctx context.Context, p domain.Project) (Server, error)
	// Adopt re-attaches to the server an earlier run of the service left
	// running for p (found by p.Pid/PidStart, p.RuntimeRef or the
	// runtime's own naming of p.ID), so a restart of the panel neither
	// starts a duplicate nor leaves an orphan. It never starts anything.
	// (nil, nil): there is none. An error means the runtime cannot tell
	// (its API is unreachable): the service then refuses to start rather
	// than risk a second copy.
	Adopt(ctx context.Context, p domain.Project) (Server, error)
	// Healthy reports whether the server of p answers GET /health with
	// 200 at p.InternalURL, the address Server.Observe last reported.
	Healthy(ctx context.Context, p domain.Project) bool
	// Logs returns the last n lines of the server's output (every start
	// of it, oldest first); "" without error when it never ran.
	Logs(ctx context.Context, p domain.Project, n int) (string, error)
	// Usage is what the server of p costs now, read from the record
	// (p.Pid locally). A runtime that cannot measure returns ErrNoUsage
	// and the stats show zeros for it.
	Usage(ctx context.Context, p domain.Project) (Usage, error)
	// Purge removes what the runtime made for p that outlives a removed
	// server (a volume claim, a stopped job's definition); it is called
	// once p is deleted, and is nil when there is nothing.
	Purge(ctx context.Context, p domain.Project) error
}

// Server is one tracking server the runtime started or adopted. Its
// methods are safe for concurrent use.
type Server interface {
	// Observe reports what the runtime knows of the server now. It is
	// called on every reconcile tick (MLPANEL reconcile interval, 1s) of
	// every project with a server, so it must be cheap: a process table,
	// an informer's cache, a rate-limited API read.
	Observe(ctx context.Context) Observation
	// Stop ends the server because the project sleeps (idle timeout,
	// MLPANEL_MAX_AWAKE) or the panel exits with MLPANEL_STOP_ON_EXIT:
	// nothing of it runs afterwards, but the runtime may keep what makes
	// the next Start of p quick (a Deployment scaled to 0). Stopping a
	// server that is gone is nil.
	Stop(ctx context.Context) error
	// Remove ends the server for good: the project was terminated or
	// archived, or its server crashed and a new one will be started.
	// Nothing of it stays in the runtime (process group killed, job
	// stopped and purged, Deployment and Service deleted); the project's
	// data (its folder, database, volume) stays. Removing a server that
	// is gone is nil.
	Remove(ctx context.Context) error
	// Ref identifies the server for a later Adopt; the service records
	// it on the project.
	Ref() Ref
}

// Observation is a server's state as its runtime sees it.
type Observation struct {
	// Alive: the server exists and runs or will run (a pending
	// allocation, a pod being scheduled). False: it is gone and will not
	// come back by itself (the process exited, the job is dead, the
	// object was deleted behind the panel); the service counts a crash,
	// calls Remove and starts a new one after backoff.
	Alive bool
	// Address is where other services reach the server, the project's
	// internalUrl: http://host:port/projects/<id>/mlflow or a Unix
	// socket URL (pkg/platform/sockhttp). "" while the runtime does not
	// know it (pending, being rescheduled to another node): a running
	// project then shows starting until the server answers at its new
	// address. A new address is saved on the project and published
	// (event "updated"), so the gateway proxies to it.
	Address string
	// Restarts counts the restarts the runtime made on its own since
	// Start or Adopt (a Nomad restart or reschedule after a lost node, a
	// container restart). Each new one counts as a crash: restartCount,
	// backoff bookkeeping, failed after MLPANEL_MAX_FAILURES in a row.
	Restarts int
	// Reason says why the server is gone or restarted last ("exit status
	// 1", "OOMKilled", "node lost"); it becomes the project's lastError.
	Reason string
	// Waiting: the server has no address because the runtime holds it
	// back for something outside it that will come back (the node that
	// holds its volume is down), not because it fails to start. The
	// project stays starting with Reason for as long as that lasts: the
	// start timeout does not apply, since starting it anew elsewhere
	// would start it without its data.
	Waiting bool
}

// Ref is what a project's record keeps of its server.
type Ref struct {
	// Pid and PidStart are a local server's process group leader and its
	// start time (pids are reused); the project shows Pid as its pid.
	// Zero on a cluster runtime.
	Pid      int
	PidStart uint64
	// Name is a cluster runtime's handle (a Nomad job id, a Deployment's
	// namespace/name); "" locally.
	Name string
}

// Usage is what a server costs now. On a runtime that measures a
// container rather than a process group, Processes is 1.
type Usage = proc.Usage

// ErrNoUsage is Runtime.Usage's answer where the runtime has no
// measurement (no metrics API): the project's stats show zeros.
var ErrNoUsage = errors.New("this runtime does not measure its servers")
