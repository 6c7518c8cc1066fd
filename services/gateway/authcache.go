package gateway

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/services/gateway/access"
)

// authCacheTTL bounds how long a verified token, a user or a role is
// answered from memory. Changes made through any gateway drop the cache
// at once (accessChanged); the TTL only bounds a change made behind the
// gateways' back (straight in the database) or a lost notice.
const authCacheTTL = 10 * time.Second

// accessChangedSubject tells every gateway instance that users, tokens or
// members changed, so each drops what it has cached.
const accessChangedSubject = "mlpanel.gateway.access.changed"

// accessCache answers the lookups every authenticated call makes (token,
// user, role, a user's projects) from memory, so auth costs no database
// round trip per call. Only answers that were found are kept: a token made
// a moment ago works at once.
type accessCache struct {
	st  *access.Store
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	gen      uint64 // bumped by every invalidation
	tokens   map[string]cacheEntry[access.Token]
	users    map[string]cacheEntry[access.User]
	roles    map[[2]string]cacheEntry[access.Role]
	projects map[string]cacheEntry[[]string]
	// A browser's sign-in: the session by its hash, and its token by id.
	sessions   map[string]cacheEntry[access.Session]
	tokensByID map[string]cacheEntry[access.Token]
	sub        *nats.Subscription
}

type cacheEntry[V any] struct {
	v  V
	at time.Time
}

func newAccessCache(st *access.Store, ttl time.Duration) *accessCache {
	c := &accessCache{st: st, ttl: ttl, now: time.Now}
	c.reset()
	return c
}

func (c *accessCache) reset() {
	c.tokens = map[string]cacheEntry[access.Token]{}
	c.users = map[string]cacheEntry[access.User]{}
	c.roles = map[[2]string]cacheEntry[access.Role]{}
	c.projects = map[string]cacheEntry[[]string]{}
	c.sessions = map[string]cacheEntry[access.Session]{}
	c.tokensByID = map[string]cacheEntry[access.Token]{}
}

// invalidate drops everything; lookups in flight do not store their
// (possibly older) answers.
func (c *accessCache) invalidate() {
	c.mu.Lock()
	c.gen++
	c.reset()
	c.mu.Unlock()
}

// follow drops the cache when another gateway instance changed access.
func (c *accessCache) follow(nc *nats.Conn) error {
	if nc == nil {
		return nil
	}
	sub, err := nc.Subscribe(accessChangedSubject, func(*nats.Msg) { c.invalidate() })
	c.sub = sub
	return err
}

func (c *accessCache) stop() {
	if c.sub != nil {
		_ = c.sub.Unsubscribe()
	}
}

// cachedLookup answers key from m while fresh, else loads and keeps it.
func cachedLookup[K comparable, V any](c *accessCache, m func() map[K]cacheEntry[V], key K, load func() (V, error)) (V, error) {
	c.mu.Lock()
	e, ok := m()[key]
	gen := c.gen
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < c.ttl {
		return e.v, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if c.gen == gen {
		m()[key] = cacheEntry[V]{v, c.now()}
	}
	c.mu.Unlock()
	return v, nil
}

// TokenByHash is access.Store.TokenByHash, cached.
func (c *accessCache) TokenByHash(ctx context.Context, hash string) (access.Token, error) {
	return cachedLookup(c, func() map[string]cacheEntry[access.Token] { return c.tokens }, hash,
		func() (access.Token, error) { return c.st.TokenByHash(ctx, hash) })
}

// UserByID is access.Store.UserByID, cached.
func (c *accessCache) UserByID(ctx context.Context, id string) (access.User, error) {
	return cachedLookup(c, func() map[string]cacheEntry[access.User] { return c.users }, id,
		func() (access.User, error) { return c.st.UserByID(ctx, id) })
}

// Role is access.Store.Role, cached (None, "not a member", is kept too:
// becoming one goes through the gateway and drops the cache).
func (c *accessCache) Role(ctx context.Context, project, userID string) (access.Role, error) {
	return cachedLookup(c, func() map[[2]string]cacheEntry[access.Role] { return c.roles }, [2]string{project, userID},
		func() (access.Role, error) { return c.st.Role(ctx, project, userID) })
}

// SessionByHash is access.Store.SessionByHash, cached: a kept sign-in
// still ends at its expiry; signing out drops the cache (changesAccess).
func (c *accessCache) SessionByHash(ctx context.Context, hash string, now time.Time) (access.Session, error) {
	se, err := cachedLookup(c, func() map[string]cacheEntry[access.Session] { return c.sessions }, hash,
		func() (access.Session, error) { return c.st.SessionByHash(ctx, hash, now) })
	if err == nil && !now.Before(se.ExpiresAt) {
		return access.Session{}, access.ErrNotFound
	}
	return se, err
}

// TokenByID is access.Store.TokenByID, cached.
func (c *accessCache) TokenByID(ctx context.Context, id string) (access.Token, error) {
	return cachedLookup(c, func() map[string]cacheEntry[access.Token] { return c.tokensByID }, id,
		func() (access.Token, error) { return c.st.TokenByID(ctx, id) })
}

// ProjectsOf is access.Store.ProjectsOf, cached.
func (c *accessCache) ProjectsOf(ctx context.Context, userID string) ([]string, error) {
	ids, err := cachedLookup(c, func() map[string]cacheEntry[[]string] { return c.projects }, userID,
		func() ([]string, error) { return c.st.ProjectsOf(ctx, userID) })
	// Callers may reuse the slice (restrictList does): hand out a copy.
	return append([]string(nil), ids...), err
}

// accessChanges drops every gateway's access cache after a call that may
// have changed users, tokens or members, before the caller gets the answer
// (the small JSON answer is still buffered when the handler returns), so a
// revoked token or a removed member is refused from the next call on.
func (g *Gateway) accessChanges(c *gin.Context) {
	c.Next()
	if g.authCache == nil || !changesAccess(c.Request.Method, c.FullPath()) {
		return
	}
	g.authCache.invalidate()
	if g.nc != nil {
		if err := g.nc.Publish(accessChangedSubject, nil); err != nil {
			g.logFor(c).Warn("telling other gateways that access changed; their caches expire within the TTL", "err", err)
		}
	}
}

// changesAccess reports whether a call may change who may do what.
func changesAccess(method, route string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS":
		return false
	}
	return route == "/users" || strings.HasPrefix(route, "/users/") ||
		route == "/projects/:id/members/:user" || route == "/projects/:id" ||
		route == "/projects/import" || // restores the archive's members
		route == "/signout" // ends a browser's sign-in
}
