package events

import (
	"testing"
	"time"
)

func TestCreatorIsTheAccountNotTheName(t *testing.T) {
	made := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	byID := Creator{ID: "u1", Name: "carol", At: made}
	if !byID.Is("carol", "u1", made.Add(-time.Hour)) {
		t.Error("the creating account does not own its project")
	}
	if byID.Is("carol", "u2", made.Add(-time.Hour)) {
		t.Error("another account named carol owns the project")
	}
	legacy := Creator{Name: "carol", At: made} // recorded before accounts had ids
	if !legacy.Is("carol", "u1", made) || !legacy.Is("carol", "u1", made.Add(-time.Hour)) {
		t.Error("the account that existed when the project was made does not own it")
	}
	if legacy.Is("carol", "u2", made.Add(time.Millisecond)) {
		t.Error("an account made after the project owns it by name")
	}
	if legacy.Is("dave", "u3", made.Add(-time.Hour)) || legacy.Is("carol", "", made) {
		t.Error("another name, or no account, owns the project")
	}
	r := Request{Restricted: true, Caller: "carol", CallerID: "u2", CallerSince: made.Add(time.Hour), Visible: []string{"7"}}
	if r.Sees("1", legacy) || !r.Sees("7", legacy) {
		t.Error("a restricted list shows a project to the re-created carol, or hides a shared one")
	}
}
