package reconcile

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs c until the test ends.
func start(t *testing.T, c *Controller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Many workers and a flood of enqueues never run one id twice at once,
// while different ids do run at once.
func TestOneIDNeverRunsTwiceAtOnce(t *testing.T) {
	var (
		mu         sync.Mutex
		running    = map[string]int{}
		overlap    atomic.Int32
		concurrent atomic.Int32
		maxConc    atomic.Int32
		runs       atomic.Int32
	)
	r := Func(func(ctx context.Context, id string) (Result, error) {
		mu.Lock()
		running[id]++
		if running[id] > 1 {
			overlap.Add(1)
		}
		mu.Unlock()
		n := concurrent.Add(1)
		for {
			m := maxConc.Load()
			if n <= m || maxConc.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		concurrent.Add(-1)
		mu.Lock()
		running[id]--
		mu.Unlock()
		runs.Add(1)
		return Result{}, nil
	})
	c := New(r, Options{Workers: 4, Resync: time.Hour, Log: quiet()})
	start(t, c)
	for i := 0; i < 200; i++ {
		c.Enqueue([]string{"a", "b", "c", "d"}[i%4])
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	eventually(t, "the queue to drain", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue) == 0 && len(c.active) == 0
	})
	if overlap.Load() != 0 {
		t.Fatalf("an id ran twice at once %d times", overlap.Load())
	}
	if maxConc.Load() < 2 {
		t.Fatalf("at most %d reconciles ran at once with 4 workers: different ids must not wait for each other", maxConc.Load())
	}
	if runs.Load() >= 200 {
		t.Fatalf("%d runs for 200 enqueues of 4 ids: queued ids are not deduplicated", runs.Load())
	}
}

// An id enqueued many times while it waits runs once; enqueued while it
// runs, it runs once more after.
func TestQueuedIDsAreDeduplicated(t *testing.T) {
	release := make(chan struct{})
	var runs atomic.Int32
	c := New(Func(func(ctx context.Context, id string) (Result, error) {
		if runs.Add(1) == 1 {
			<-release
		}
		return Result{}, nil
	}), Options{Resync: time.Hour, Log: quiet()})
	start(t, c)
	c.Enqueue("a")
	eventually(t, "the first run", func() bool { return runs.Load() == 1 })
	for i := 0; i < 50; i++ {
		c.Enqueue("a")
	}
	close(release)
	eventually(t, "the second run", func() bool { return runs.Load() >= 2 })
	time.Sleep(50 * time.Millisecond)
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d runs, want 2 (one, then one for the 50 enqueues made meanwhile)", n)
	}
}

func TestRequeueAfter(t *testing.T) {
	var runs atomic.Int32
	var first, second atomic.Int64
	c := New(Func(func(ctx context.Context, id string) (Result, error) {
		switch runs.Add(1) {
		case 1:
			first.Store(time.Now().UnixNano())
			return Result{RequeueAfter: 100 * time.Millisecond}, nil
		case 2:
			second.Store(time.Now().UnixNano())
		}
		return Result{}, nil
	}), Options{Resync: time.Hour, Log: quiet()})
	start(t, c)
	c.Enqueue("a")
	eventually(t, "the requeued run", func() bool { return runs.Load() == 2 })
	if gap := time.Duration(second.Load() - first.Load()); gap < 100*time.Millisecond {
		t.Fatalf("requeued after %s, asked for 100ms", gap)
	}
}

// Failures back off exponentially per id; a Terminal error is not retried.
func TestErrorsBackOffTerminalStops(t *testing.T) {
	var mu sync.Mutex
	at := map[string][]time.Time{}
	c := New(Func(func(ctx context.Context, id string) (Result, error) {
		mu.Lock()
		at[id] = append(at[id], time.Now())
		mu.Unlock()
		if id == "term" {
			return Result{}, Terminal(errors.New("quota exceeded"))
		}
		return Result{}, errors.New("store down")
	}), Options{Resync: time.Hour, BaseDelay: 20 * time.Millisecond, MaxDelay: time.Second, Log: quiet()})
	start(t, c)
	c.Enqueue("fail")
	c.Enqueue("term")
	eventually(t, "four attempts", func() bool { mu.Lock(); defer mu.Unlock(); return len(at["fail"]) >= 4 })
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	f := at["fail"]
	for i, want := range []time.Duration{20, 40, 80} {
		if gap := f[i+1].Sub(f[i]); gap < want*time.Millisecond {
			t.Errorf("retry %d after %s, want at least %dms", i+1, gap, want)
		}
	}
	if n := len(at["term"]); n != 1 {
		t.Errorf("a terminal error was retried: %d runs", n)
	}
	if !IsTerminal(Terminal(errors.New("x"))) || IsTerminal(errors.New("x")) || Terminal(nil) != nil {
		t.Error("Terminal/IsTerminal disagree")
	}
}

// Resync reconciles every listed id without anyone enqueueing it, and
// Lock excludes Reconcile of the same id.
func TestResyncAndLock(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	var inside atomic.Bool
	var violated atomic.Bool
	c := New(Func(func(ctx context.Context, id string) (Result, error) {
		if id == "x" && inside.Load() {
			violated.Store(true)
		}
		mu.Lock()
		seen[id]++
		mu.Unlock()
		return Result{}, nil
	}), Options{
		List:   func(context.Context) ([]string, error) { return []string{"x", "y"}, nil },
		Resync: 10 * time.Millisecond, Log: quiet(),
	})
	start(t, c)
	eventually(t, "two resyncs of both ids", func() bool { mu.Lock(); defer mu.Unlock(); return seen["x"] >= 2 && seen["y"] >= 2 })
	for i := 0; i < 5; i++ {
		unlock := c.Lock("x")
		inside.Store(true)
		time.Sleep(15 * time.Millisecond)
		inside.Store(false)
		unlock()
	}
	if violated.Load() {
		t.Fatal("Reconcile ran while a use case held the id's lock")
	}
}
