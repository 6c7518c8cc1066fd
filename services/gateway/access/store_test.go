package access

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mlpanel/mlpanel/pkg/platform/embedded"
)

// newStore is a Store on a fresh embedded FerretDB.
func newStore(t *testing.T) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f, err := embedded.StartFerretDB(ctx, t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(f.URI()))
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()); f.Close() })
	st, err := NewStore(ctx, client.Database("mlpanel"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRoles(t *testing.T) {
	for _, c := range []struct {
		have, need Role
		want       bool
	}{
		{Owner, Editor, true}, {Editor, Editor, true}, {Editor, Owner, false},
		{Viewer, Editor, false}, {Viewer, Viewer, true}, {None, Viewer, false}, {Owner, None, true},
	} {
		if got := c.have.Includes(c.need); got != c.want {
			t.Errorf("%q includes %q = %v, want %v", c.have, c.need, got, c.want)
		}
	}
	for _, s := range []string{"viewer", "editor", "owner"} {
		if r, err := ParseRole(s); err != nil || string(r) != s {
			t.Errorf("ParseRole(%q) = %q, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "admin", "Owner"} {
		if _, err := ParseRole(s); err == nil {
			t.Errorf("ParseRole(%q) accepted", s)
		}
	}
	if HashSecret("a") == HashSecret("b") || HashSecret("a") != HashSecret("a") || len(NewSecret()) < 40 {
		t.Error("secrets are not hashed one to one, or are short")
	}
}

// TestDeletedUserLeavesNothing: a user's tokens, memberships and
// sign-ins go with them, and a newcomer with the same name is someone
// else (another id) who inherits none of it.
func TestDeletedUserLeavesNothing(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	ana := User{Name: "ana", CreatedAt: now}
	if err := st.CreateUser(ctx, &ana); err != nil || ana.ID == "" {
		t.Fatalf("create: %v, id %q", err, ana.ID)
	}
	if err := st.CreateUser(ctx, &User{Name: "ana"}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second ana: %v, want ErrDuplicate", err)
	}
	tok := Token{ID: NewID(), User: "ana", UserID: ana.ID, Name: "laptop", Hash: HashSecret("s3cret"), CreatedAt: now}
	if err := st.AddToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if got, err := st.TokenByHash(ctx, HashSecret("s3cret")); err != nil || got.UserID != ana.ID {
		t.Fatalf("token by hash: %+v %v", got, err)
	}
	if _, err := st.TokenByHash(ctx, HashSecret("wrong")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown secret: %v", err)
	}
	for _, p := range []string{"1", "2"} {
		if err := st.SetMember(ctx, Member{Project: p, User: "ana", UserID: ana.ID, Role: Viewer}); err != nil {
			t.Fatal(err)
		}
	}
	// A second SetMember replaces the role; it does not add a membership.
	if err := st.SetMember(ctx, Member{Project: "1", User: "ana", UserID: ana.ID, Role: Editor}); err != nil {
		t.Fatal(err)
	}
	if r, _ := st.Role(ctx, "1", ana.ID); r != Editor {
		t.Errorf("role on 1: %q, want editor", r)
	}
	if ids, _ := st.ProjectsOf(ctx, ana.ID); !slices.Equal(sorted(ids), []string{"1", "2"}) {
		t.Errorf("ana's projects: %v", ids)
	}
	se := Session{Hash: HashSecret("cookie"), UserID: ana.ID, TokenID: tok.ID, CSRF: "c", ExpiresAt: now.Add(time.Hour)}
	if err := st.AddSession(ctx, se); err != nil {
		t.Fatal(err)
	}

	if err := st.DeleteUser(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.TokenByHash(ctx, HashSecret("s3cret")); !errors.Is(err, ErrNotFound) {
		t.Errorf("the deleted user's token still resolves: %v", err)
	}
	if _, err := st.SessionByHash(ctx, se.Hash, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("the deleted user's sign-in still resolves: %v", err)
	}
	if _, err := st.UserByID(ctx, ana.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the deleted user's id still resolves: %v", err)
	}
	again := User{Name: "ana", CreatedAt: now.Add(time.Minute)}
	if err := st.CreateUser(ctx, &again); err != nil {
		t.Fatal(err)
	}
	if again.ID == ana.ID {
		t.Fatal("the newcomer got the deleted user's id")
	}
	if r, _ := st.Role(ctx, "1", again.ID); r != None {
		t.Errorf("the newcomer inherited role %q on project 1", r)
	}
	if ids, _ := st.ProjectsOf(ctx, again.ID); len(ids) != 0 {
		t.Errorf("the newcomer inherited projects %v", ids)
	}
	if err := st.DeleteUser(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting an unknown user: %v", err)
	}
}

// TestMembersAndSessions: removing a role, revoking a token, and a
// sign-in that expires.
func TestMembersAndSessions(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	bo := User{Name: "bo", CreatedAt: now}
	if err := st.CreateUser(ctx, &bo); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Role(ctx, "7", bo.ID); err != nil || r != None {
		t.Errorf("a stranger's role: %q %v", r, err)
	}
	if r, _ := st.Role(ctx, "7", ""); r != None {
		t.Errorf("no user id: role %q", r)
	}
	if err := st.SetMember(ctx, Member{Project: "7", User: "bo", UserID: bo.ID, Role: Owner}); err != nil {
		t.Fatal(err)
	}
	if ms, _ := st.Members(ctx, "7"); len(ms) != 1 || ms[0].Role != Owner {
		t.Errorf("members of 7: %+v", ms)
	}
	if err := st.RemoveMember(ctx, "7", bo.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveMember(ctx, "7", bo.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing twice: %v", err)
	}
	if r, _ := st.Role(ctx, "7", bo.ID); r != None {
		t.Errorf("role after removal: %q", r)
	}

	tok := Token{ID: NewID(), User: "bo", UserID: bo.ID, Name: "ci", Hash: HashSecret("t"), CreatedAt: now}
	if err := st.AddToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteToken(ctx, "someone-else", tok.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("another user revoked bo's token: %v", err)
	}
	if err := st.DeleteToken(ctx, bo.ID, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.TokenByID(ctx, tok.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked token still found: %v", err)
	}

	se := Session{Hash: HashSecret("cookie"), UserID: bo.ID, TokenID: tok.ID, CSRF: "c", ExpiresAt: now.Add(time.Hour)}
	if err := st.AddSession(ctx, se); err != nil {
		t.Fatal(err)
	}
	if got, err := st.SessionByHash(ctx, se.Hash, now); err != nil || got.UserID != bo.ID {
		t.Errorf("live sign-in: %+v %v", got, err)
	}
	if _, err := st.SessionByHash(ctx, se.Hash, se.ExpiresAt); !errors.Is(err, ErrNotFound) {
		t.Errorf("a sign-in at its expiry still works: %v", err)
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
