package keyed

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The holders of one key never overlap: each checks on entry that nobody
// else is inside and yields while inside, so a lock that does not exclude
// is caught without the race detector.
func TestSameKeyIsSerialisedOthersAreNot(t *testing.T) {
	var k Mutex
	var wg sync.WaitGroup
	var inside, overlaps atomic.Int32
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := k.Lock("a")
			if inside.Add(1) > 1 {
				overlaps.Add(1)
			}
			runtime.Gosched()
			time.Sleep(100 * time.Microsecond)
			inside.Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d holders of key a found another one inside", n)
	}
	unlockA := k.Lock("a")
	done := make(chan struct{})
	go func() { k.Lock("b")(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("locking b waited for a")
	}
	unlockA()
}
