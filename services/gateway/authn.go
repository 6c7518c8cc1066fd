package gateway

// Authentication: who calls (a bearer token, a token as the basic-auth
// password, or a browser's sign-in cookie), and the route's requirement
// checked in order: authenticate runs on every call.

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/gateway/access"
)

const (
	userKey    = "mlpanel.user"    // the caller's access.User
	projectKey = "mlpanel.project" // the project a call concerns, for audit
	visibleKey = "mlpanel.visible" // what a restricted list may show
)

// authenticate identifies the caller by token and checks the route's
// requirement. With auth off everyone may do everything, as on a laptop.
func (g *Gateway) authenticate(c *gin.Context) {
	route := c.FullPath()
	if !g.cfg.Auth {
		if mutating(c.Request.Method, route) {
			if err := g.noteProject(c); err != nil {
				writeError(c, err)
				return
			}
		}
		c.Next()
		return
	}
	nd := g.table.need(c)
	if nd == public {
		c.Next()
		return
	}
	if g.access == nil {
		writeError(c, events.Errorf(http.StatusServiceUnavailable, "the gateway is still starting: try again"))
		return
	}
	user, err := g.caller(c)
	if err != nil {
		if route == mlflowRoute && c.Request.Method == http.MethodGet && strings.Contains(c.GetHeader("Accept"), "text/html") &&
			events.StatusOf(err) == http.StatusUnauthorized {
			// A browser opening the MLflow UI: off to the sign-in form.
			c.Redirect(http.StatusSeeOther, "/signin?next="+url.QueryEscape(c.Request.URL.RequestURI()))
			c.Abort()
			return
		}
		c.Header("WWW-Authenticate", `Bearer realm="mlpanel"`)
		writeError(c, err)
		return
	}
	c.Set(callerKey, user.Name)
	c.Set(userKey, user)
	if se, ok := c.Get(sessionKey); ok && !csrfOK(c, se.(*access.Session), g.publicURL) {
		writeError(c, events.Errorf(http.StatusForbidden,
			"a write signed in by cookie must come from this gateway's own pages (Origin) or carry the %s header from sign-in", csrfHeader))
		return
	}
	if route == "/projects/:id/mlflow/*path" {
		nd = mlflowNeed(c.Request.Method, c.Param("path"))
	}
	if err := g.authorize(c, user, nd); err != nil {
		writeError(c, err)
		return
	}
	c.Next()
}

// caller finds the user of a bearer token, or of a token given as the
// password of HTTP basic auth (MLFLOW_TRACKING_USERNAME/PASSWORD).
func (g *Gateway) caller(c *gin.Context) (access.User, error) {
	h := c.GetHeader("Authorization")
	var secret string
	switch {
	case strings.HasPrefix(h, "Bearer "):
		secret = strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	case strings.HasPrefix(h, "Basic "):
		if raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic ")); err == nil {
			if _, pw, ok := strings.Cut(string(raw), ":"); ok {
				secret = pw
			}
		}
	}
	if secret == "" && h == "" {
		u, se, err := g.sessionUser(c)
		if err == nil {
			c.Set(sessionKey, se)
			return u, nil
		}
		if !errors.Is(err, access.ErrNotFound) {
			return access.User{}, err
		}
	}
	if secret == "" {
		return access.User{}, events.Errorf(http.StatusUnauthorized, "authentication required: send Authorization: Bearer <token> (for MLflow clients set MLFLOW_TRACKING_TOKEN), or sign in at /signin in a browser")
	}
	tok, err := g.authCache.TokenByHash(c, access.HashSecret(secret))
	if errors.Is(err, access.ErrNotFound) {
		return access.User{}, events.Errorf(http.StatusUnauthorized, "invalid or revoked token: ask an admin for a new one")
	}
	if err != nil {
		return access.User{}, err
	}
	// By id: a token of a deleted user never works for a newcomer who
	// took the name.
	u, err := g.authCache.UserByID(c, tok.UserID)
	if errors.Is(err, access.ErrNotFound) {
		return access.User{}, events.Errorf(http.StatusUnauthorized, "the token's user no longer exists")
	}
	return u, err
}
