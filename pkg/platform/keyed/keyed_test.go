package keyed

import (
	"sync"
	"testing"
)

func TestSameKeyIsSerialisedOthersAreNot(t *testing.T) {
	var k Mutex
	var wg sync.WaitGroup
	counter := 0 // guarded only by k.Lock("a"): -race reports a missing lock
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := k.Lock("a")
			counter++
			unlock()
		}()
	}
	wg.Wait()
	if counter != 50 {
		t.Fatalf("counter = %d, want 50", counter)
	}
	unlockA := k.Lock("a")
	done := make(chan struct{})
	go func() { k.Lock("b")(); close(done) }()
	<-done // would hang if "b" waited for "a"
	unlockA()
}
