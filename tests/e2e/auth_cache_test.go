package e2e

import (
	"testing"
)

// TestAuthCacheFollowsChanges: tokens and roles are answered from a cache
// on a team server, yet a role given or taken and a token revoked count
// from the very next call, and the audit log (written through a durable
// queue) shows every call made before it is read.
func TestAuthCacheFollowsChanges(t *testing.T) {
	tp := startTeamPanel(t)
	erin := tp.newUser(t, "erin", false)
	expect(t, tp.as(t, tp.admin, "POST", "/projects", map[string]string{"name": "cacheproj"}), 201)

	// Not a member: the project does not exist for her (and that is cached).
	for i := 0; i < 3; i++ {
		expect(t, tp.as(t, erin, "GET", "/projects/cacheproj", nil), 404)
	}
	expect(t, tp.as(t, tp.admin, "PUT", "/projects/cacheproj/members/erin", map[string]string{"role": "viewer"}), 200)
	expect(t, tp.as(t, erin, "GET", "/projects/cacheproj", nil), 200)
	expect(t, tp.as(t, erin, "PUT", "/projects/cacheproj", map[string]string{"description": "x"}), 403)
	expect(t, tp.as(t, tp.admin, "PUT", "/projects/cacheproj/members/erin", map[string]string{"role": "owner"}), 200)
	expect(t, tp.as(t, erin, "PUT", "/projects/cacheproj", map[string]string{"description": "mine now"}), 200)
	expect(t, tp.as(t, tp.admin, "DELETE", "/projects/cacheproj/members/erin", nil), 200)
	expect(t, tp.as(t, erin, "GET", "/projects/cacheproj", nil), 404)

	// A revoked token is refused from the next call on.
	expect(t, tp.as(t, erin, "GET", "/me", nil), 200)
	r := tp.as(t, tp.admin, "GET", "/users/erin/tokens", nil)
	var toks []struct{ ID string }
	r.JSON(t, &toks)
	expect(t, tp.as(t, tp.admin, "DELETE", "/users/erin/tokens/"+toks[0].ID, nil), 200)
	expect(t, tp.as(t, erin, "GET", "/me", nil), 401)
	expect(t, tp.as(t, erin, "GET", "/projects", nil), 401)

	// A deleted user's other tokens die with her.
	frank := tp.newUser(t, "frank", false)
	expect(t, tp.as(t, frank, "GET", "/me", nil), 200)
	expect(t, tp.as(t, tp.admin, "DELETE", "/users/frank", nil), 200)
	expect(t, tp.as(t, frank, "GET", "/me", nil), 401)

	// The audit log has every mutating call, read right after them.
	r = tp.as(t, tp.admin, "GET", "/audit?_end=100000", nil)
	expect(t, r, 200)
	var entries []struct {
		Method, Path string
		Status       int
	}
	r.JSON(t, &entries)
	logged := map[string]int{}
	for _, e := range entries {
		logged[e.Method+" "+e.Path+" "+itoa(e.Status)]++
	}
	for _, m := range tp.mutations {
		if logged[m] == 0 {
			t.Errorf("no audit entry for %s", m)
		}
		logged[m]--
	}
}
