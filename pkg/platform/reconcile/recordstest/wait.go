package recordstest

import (
	"context"
	"testing"
	"time"
)

// WaitFor polls get(id) until ok accepts the record, and fails the test
// after 10 s with describe's account of the last one read.
func WaitFor[T any](t testing.TB, get func(ctx context.Context, id string) (T, error), id string, ok func(T) bool, describe func(T) string) T {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := get(context.Background(), id)
		if err == nil && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s (read error %v)", id, describe(v), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
