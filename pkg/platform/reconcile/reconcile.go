// Package reconcile is the one mechanism every service uses to make what
// runs match what its records ask for, in the shape of controller-runtime:
// a work queue of entity ids that never runs one id twice at once, and a
// Reconciler that moves one id one step and says when to look again.
//
// The queue dedupes ids waiting in it, requeues after the delay a
// Reconcile asks for, backs an id off exponentially while its Reconcile
// fails, and drops an id whose error is Terminal. A periodic resync queues
// every listed id, so nothing is lost to a missed wake-up.
package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/keyed"
)

// Result tells the queue when to reconcile the id again; zero means only
// on the next resync or Enqueue.
type Result struct {
	RequeueAfter time.Duration
}

// Reconciler converges one entity. Reconcile runs under the id's lock
// (the one Controller.Lock hands out), so it is the entity's only writer
// while it runs.
type Reconciler interface {
	Reconcile(ctx context.Context, id string) (Result, error)
}

// Func adapts a function to a Reconciler.
type Func func(ctx context.Context, id string) (Result, error)

// Reconcile calls f.
func (f Func) Reconcile(ctx context.Context, id string) (Result, error) { return f(ctx, id) }

type terminalError struct{ err error }

func (t *terminalError) Error() string { return t.err.Error() }
func (t *terminalError) Unwrap() error { return t.err }

// Terminal marks an error that retrying cannot fix: the id is not
// requeued for it (a later resync or Enqueue still reconciles it).
func Terminal(err error) error {
	if err == nil {
		return nil
	}
	return &terminalError{err: err}
}

// IsTerminal reports whether err was marked Terminal.
func IsTerminal(err error) bool {
	var t *terminalError
	return errors.As(err, &t)
}

// Options shape a Controller.
type Options struct {
	// List returns every id to reconcile on a resync.
	List func(ctx context.Context) ([]string, error)
	// Resync is how often every listed id is queued; 0 is one second.
	Resync time.Duration
	// Workers reconcile different ids at once; 0 is one, which keeps a
	// pass over all ids in order, as a single loop would.
	Workers int
	// BaseDelay and MaxDelay bound the backoff of an id whose Reconcile
	// fails: BaseDelay doubled per failure in a row, at most MaxDelay.
	// Defaults 1 s and 30 s.
	BaseDelay, MaxDelay time.Duration
	// Name appears in log lines ("project", "deployment").
	Name string
	Log  *slog.Logger
}

// Controller owns the queue of one kind of entity.
type Controller struct {
	r     Reconciler
	opts  Options
	locks keyed.Mutex

	mu       sync.Mutex
	queue    []string               // ids ready to run, in order
	queued   map[string]bool        // ids in queue
	active   map[string]bool        // ids being reconciled
	dirty    map[string]bool        // ids enqueued while active: run again after
	timers   map[string]*time.Timer // delayed adds
	failures map[string]int         // errors in a row, for backoff
	stopped  bool
	wake     chan struct{}
}

// New builds a controller for r.
func New(r Reconciler, opts Options) *Controller {
	if opts.Resync == 0 {
		opts.Resync = time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.BaseDelay == 0 {
		opts.BaseDelay = time.Second
	}
	if opts.MaxDelay == 0 {
		opts.MaxDelay = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Name == "" {
		opts.Name = "id"
	}
	return &Controller{
		r: r, opts: opts,
		queued: map[string]bool{}, active: map[string]bool{}, dirty: map[string]bool{},
		timers: map[string]*time.Timer{}, failures: map[string]int{},
		wake: make(chan struct{}, 1),
	}
}

// Lock takes id's lock, the one Reconcile runs under, so a use case that
// writes the entity never interleaves with its reconcile.
func (c *Controller) Lock(id string) (unlock func()) { return c.locks.Lock(id) }

// Enqueue asks for id to be reconciled as soon as a worker is free. An id
// already waiting is not added twice; one being reconciled runs once more
// after it.
func (c *Controller) Enqueue(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.timers[id]; ok {
		t.Stop()
		delete(c.timers, id)
	}
	c.addLocked(id)
}

// EnqueueAfter queues id once d has passed (at once for d <= 0). A
// pending delayed add of id is replaced.
func (c *Controller) EnqueueAfter(id string, d time.Duration) {
	if d <= 0 {
		c.Enqueue(id)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.afterLocked(id, d)
}

func (c *Controller) afterLocked(id string, d time.Duration) {
	if c.stopped {
		return
	}
	if t, ok := c.timers[id]; ok {
		t.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.timers[id] != t {
			return // replaced or cancelled meanwhile
		}
		delete(c.timers, id)
		c.addLocked(id)
	})
	c.timers[id] = t
}

func (c *Controller) addLocked(id string) {
	if c.stopped || c.queued[id] {
		return
	}
	if c.active[id] {
		c.dirty[id] = true
		return
	}
	c.queued[id] = true
	c.queue = append(c.queue, id)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// resync queues every listed id, except those waiting out an error
// backoff: the backoff is the point of the wait.
func (c *Controller) resync(ctx context.Context) {
	if c.opts.List == nil {
		return
	}
	ids, err := c.opts.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.opts.Log.Error("reconcile: listing", "kind", c.opts.Name, "err", err)
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if c.failures[id] > 0 && c.timers[id] != nil {
			continue
		}
		c.addLocked(id)
	}
}

// next takes the first queued id, or "" when none is.
func (c *Controller) next() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return ""
	}
	id := c.queue[0]
	c.queue = c.queue[1:]
	delete(c.queued, id)
	c.active[id] = true
	return id
}

// Run resyncs and reconciles until ctx ends, then waits for the
// reconciles in progress and returns. Call it once.
func (c *Controller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(ctx)
		}()
	}
	t := time.NewTicker(c.opts.Resync)
	defer t.Stop()
	for {
		c.resync(ctx)
		select {
		case <-ctx.Done():
			c.mu.Lock()
			c.stopped = true
			for id, t := range c.timers {
				t.Stop()
				delete(c.timers, id)
			}
			c.mu.Unlock()
			c.signal()
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// signal wakes every worker: the wake channel holds one token, and a
// worker that takes it passes it on while there is work or a stop.
func (c *Controller) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Controller) work(ctx context.Context) {
	for {
		id := c.next()
		if id == "" {
			select {
			case <-ctx.Done():
				c.signal()
				return
			case <-c.wake:
				continue
			}
		}
		if ctx.Err() != nil {
			c.finish(id, Result{}, nil, ctx)
			c.signal()
			return
		}
		c.signal() // another worker may take the next id
		unlock := c.locks.Lock(id)
		res, err := c.r.Reconcile(ctx, id)
		unlock()
		c.finish(id, res, err, ctx)
	}
}

// finish records the outcome of one reconcile and schedules the next.
func (c *Controller) finish(id string, res Result, err error, ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.active, id)
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: the error is the cancellation's.
	case err != nil && IsTerminal(err):
		delete(c.failures, id)
		c.opts.Log.Error("reconcile: giving up", c.opts.Name, id, "err", err)
	case err != nil:
		c.failures[id]++
		wait := c.backoff(c.failures[id])
		c.opts.Log.Error("reconcile", c.opts.Name, id, "err", err, "retry_in", wait)
		delete(c.dirty, id)
		c.afterLocked(id, wait)
		return
	default:
		delete(c.failures, id)
	}
	if c.dirty[id] {
		delete(c.dirty, id)
		c.addLocked(id)
		return
	}
	if err == nil && res.RequeueAfter > 0 {
		c.afterLocked(id, res.RequeueAfter)
	}
}

func (c *Controller) backoff(failures int) time.Duration {
	d := c.opts.BaseDelay
	for i := 1; i < failures && d < c.opts.MaxDelay; i++ {
		d *= 2
	}
	return min(d, c.opts.MaxDelay)
}
