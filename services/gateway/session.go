package gateway

import (
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/gateway/access"
)

// Browsers cannot send a bearer token, so they sign in once with a token
// and get a session cookie, accepted on the API and the MLflow proxy
// alike. Writes made with the cookie must come from the gateway's own
// origin (Origin or Referer), or carry the sign-in's CSRF token: a page
// elsewhere cannot make the browser write with it.
const (
	sessionCookie = "mlpanel_session"
	csrfCookie    = "mlpanel_csrf" // readable by the gateway's own scripts
	csrfHeader    = "X-CSRF-Token"
	sessionTTL    = 12 * time.Hour
	sessionKey    = "mlpanel.session" // the caller's *access.Session, when signed in by cookie
)

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlpanel sign-in</title></head>
<body>
<h1>Sign in to mlpanel</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/signin">
<label>API token <input type="password" name="token" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{{.Next}}">
<button type="submit">Sign in</button>
</form>
<p>An admin creates your token with POST /users/{name}/tokens.</p>
</body></html>
`))

func (g *Gateway) signInForm(c *gin.Context) {
	g.renderSignIn(c, http.StatusOK, "")
}

func (g *Gateway) renderSignIn(c *gin.Context, status int, msg string) {
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("X-Frame-Options", "DENY") // no clickjacking of the form
	c.Status(status)
	_ = signInPage.Execute(c.Writer, struct{ Error, Next string }{msg, safeNext(c.Query("next"))})
}

// safeNext is where to go after signing in: a path on this gateway, never
// another site ("//host" or "https://...").
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, `/\`) {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}

func isForm(c *gin.Context) bool {
	ct := c.GetHeader("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")
}

// signIn turns a valid token into a session cookie: a form is sent on to
// its next page (303), a JSON call gets the CSRF token in the answer.
func (g *Gateway) signIn(c *gin.Context) {
	if g.access == nil {
		writeError(c, events.Errorf(http.StatusServiceUnavailable, "the gateway is still starting: try again"))
		return
	}
	var in struct {
		Token string `json:"token"`
		Next  string `json:"next"`
	}
	if c.GetHeader("Origin") != "" && !sameOrigin(c.Request, g.publicURL) {
		// Another site's form must not sign the browser in as someone else.
		writeError(c, events.Errorf(http.StatusForbidden, "sign in from this gateway's own /signin page"))
		return
	}
	if err := decodeBody(c, g.cfg.MaxBody, &in); err != nil {
		writeError(c, err)
		return
	}
	refuse := func(status int, msg string) {
		if isForm(c) {
			g.renderSignIn(c, status, msg)
			c.Abort()
			return
		}
		writeError(c, events.Errorf(status, "%s", msg))
	}
	if strings.TrimSpace(in.Token) == "" {
		refuse(http.StatusBadRequest, "token is required: paste an API token (mlp_...)")
		return
	}
	tok, err := g.access.TokenByHash(c, access.HashSecret(strings.TrimSpace(in.Token)))
	var u access.User
	if err == nil {
		u, err = g.access.UserByID(c, tok.UserID)
	}
	if errors.Is(err, access.ErrNotFound) {
		refuse(http.StatusUnauthorized, "invalid or revoked token: ask an admin for a new one")
		return
	}
	if err != nil {
		writeError(c, err)
		return
	}
	secret := access.NewSecret()
	se := access.Session{Hash: access.HashSecret(secret), UserID: u.ID, TokenID: tok.ID,
		CSRF: access.NewID() + access.NewID(), ExpiresAt: g.now().Add(sessionTTL)}
	if err := g.access.AddSession(c, se); err != nil {
		writeError(c, err)
		return
	}
	c.Set(callerKey, u.Name) // for the audit entry
	secure := c.Request.TLS != nil || strings.EqualFold(c.GetHeader("X-Forwarded-Proto"), "https")
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: secret, Path: "/", MaxAge: int(sessionTTL.Seconds()),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	http.SetCookie(c.Writer, &http.Cookie{Name: csrfCookie, Value: se.CSRF, Path: "/", MaxAge: int(sessionTTL.Seconds()),
		Secure: secure, SameSite: http.SameSiteStrictMode})
	if isForm(c) {
		c.Redirect(http.StatusSeeOther, safeNext(in.Next))
		return
	}
	c.JSON(http.StatusOK, gin.H{"name": u.Name, "expiresAt": se.ExpiresAt, "csrf_token": se.CSRF})
}

// signOut ends the browser's sign-in. It is a write made with the
// cookie like any other, so it passes the same CSRF check: another site
// must not be able to sign the browser out.
func (g *Gateway) signOut(c *gin.Context) {
	if ck, err := c.Cookie(sessionCookie); err == nil && ck != "" && g.access != nil {
		se, err := g.authCache.SessionByHash(c, access.HashSecret(ck), g.now())
		switch {
		case errors.Is(err, access.ErrNotFound):
			// Expired or ended already: only the cookies are left to clear.
		case err != nil:
			writeError(c, err)
			return
		case !csrfOK(c, &se, g.publicURL):
			writeError(c, events.Errorf(http.StatusForbidden,
				"signing out with the cookie must come from this gateway's own pages (Origin) or carry the %s header from sign-in", csrfHeader))
			return
		default:
			if err := g.access.DeleteSession(c, se.Hash); err != nil {
				writeError(c, err)
				return
			}
		}
	}
	for _, name := range []string{sessionCookie, csrfCookie} {
		http.SetCookie(c.Writer, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1})
	}
	if isForm(c) {
		c.Redirect(http.StatusSeeOther, "/signin")
		return
	}
	c.JSON(http.StatusOK, gin.H{"signed_out": true})
}

// sessionUser is the user of the request's session cookie, if it has a
// live one: unexpired, its token not revoked, its user not deleted.
func (g *Gateway) sessionUser(c *gin.Context) (access.User, *access.Session, error) {
	ck, err := c.Cookie(sessionCookie)
	if err != nil || ck == "" {
		return access.User{}, nil, access.ErrNotFound
	}
	// From the cache, as a bearer token is: the MLflow UI makes many calls
	// per page. Signing out, revoking the token and deleting the user drop it.
	se, err := g.authCache.SessionByHash(c, access.HashSecret(ck), g.now())
	if err != nil {
		return access.User{}, nil, err
	}
	tok, err := g.authCache.TokenByID(c, se.TokenID)
	if err != nil {
		return access.User{}, nil, err
	}
	if tok.UserID != se.UserID {
		return access.User{}, nil, access.ErrNotFound
	}
	u, err := g.authCache.UserByID(c, se.UserID)
	return u, &se, err
}

// csrfOK reports whether a write made with a session cookie may go on:
// it comes from the gateway's own origin, or carries the CSRF token.
func csrfOK(c *gin.Context, se *access.Session, public *url.URL) bool {
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	if t := c.GetHeader(csrfHeader); t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(se.CSRF)) == 1 {
		return true
	}
	return sameOrigin(c.Request, public)
}

// sameOrigin reports whether the browser says the request comes from a
// page of this gateway (Origin, or Referer where a browser sends no
// Origin): the host it called, or MLPANEL_PUBLIC_URL when the gateway
// sits behind another proxy. The CSRF check, CORS preflights and the
// MLflow proxy's Origin rewrite all ask this one question.
func sameOrigin(r *http.Request, public *url.URL) bool {
	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	if from == "" || from == "null" {
		return false
	}
	u, err := url.Parse(from)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return public != nil && strings.EqualFold(u.Scheme, public.Scheme) && strings.EqualFold(u.Host, public.Host)
}

// preflight answers CORS preflight requests without a token: a browser
// sends none with them. Only the gateway's own origin is allowed, so
// other sites stay as blocked as before.
func (g *Gateway) preflight(c *gin.Context) {
	if c.Request.Method != http.MethodOptions || c.GetHeader("Access-Control-Request-Method") == "" || c.GetHeader("Origin") == "" {
		c.Next()
		return
	}
	h := c.Writer.Header()
	h.Add("Vary", "Origin")
	if sameOrigin(c.Request, g.publicURL) {
		h.Set("Access-Control-Allow-Origin", c.GetHeader("Origin"))
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-CSRF-Token, X-Request-ID")
		h.Set("Access-Control-Max-Age", "600")
	}
	c.AbortWithStatus(http.StatusNoContent)
}

// stripSessionCookies keeps the gateway's cookies from reaching MLflow.
func stripSessionCookies(h http.Header) {
	cs := (&http.Request{Header: h}).Cookies()
	if len(cs) == 0 {
		return
	}
	var keep []string
	for _, ck := range cs {
		if ck.Name != sessionCookie && ck.Name != csrfCookie {
			keep = append(keep, ck.Name+"="+ck.Value)
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}
