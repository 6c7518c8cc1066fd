package reconcile

import (
	"context"
	"log/slog"
	"sync"
)

// Supervisor is a service whose servers a Controller converges.
type Supervisor interface {
	// Adopt takes over the servers an earlier run left alive.
	Adopt(ctx context.Context) error
	// Supervise converges until ctx ends, then stops what it must.
	Supervise(ctx context.Context) error
}

// Endpoints is a registered request handler (a NATS micro service).
type Endpoints interface{ Stop() error }

// Serve runs a supervised service until ctx ends: it adopts before it
// registers the endpoints, so a request that arrives early never starts a
// second copy of a server that survived a restart; on the way out it
// deregisters first, then waits for the supervisor to finish. Once the
// endpoints answer it logs "ready" with readyArgs (what the service runs
// with).
func Serve(ctx context.Context, s Supervisor, register func() (Endpoints, error), log *slog.Logger, readyArgs ...any) error {
	if err := s.Adopt(ctx); err != nil {
		return err
	}
	supervised := make(chan error, 1)
	go func() { supervised <- s.Supervise(ctx) }()
	ep, err := register()
	if err != nil {
		return err
	}
	log.Info("ready", readyArgs...)
	<-ctx.Done()
	if err := ep.Stop(); err != nil {
		log.Warn("stopping micro service", "err", err)
	}
	return <-supervised
}

// Parallel runs every fn at once and waits for all, so stopping many
// servers takes one grace period, not one per server.
func Parallel(fns []func()) {
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn()
		}()
	}
	wg.Wait()
}
