package errs

import (
	"errors"
	"fmt"
	"testing"
)

func TestKindOfSeesThroughWrapping(t *testing.T) {
	err := fmt.Errorf("starting project 3: %w", Conflictf("project %q is running: stop it first", "p"))
	if KindOf(err) != Conflict || !Is(err, Conflict) || Is(err, NotFound) {
		t.Fatalf("KindOf(%v) = %v, want conflict", err, KindOf(err))
	}
	if err.Error() != `starting project 3: project "p" is running: stop it first` {
		t.Fatalf("message %q", err)
	}
	if KindOf(errors.New("disk full")) != Internal || Is(nil, Internal) {
		t.Fatal("an error without a kind is internal; nil is no kind")
	}
	if e := AsInvalid(errors.New("name: want letters")); e.Kind != Invalid || e.Message != "name: want letters" {
		t.Fatalf("AsInvalid = %+v", e)
	}
}
