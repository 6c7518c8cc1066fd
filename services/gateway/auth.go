package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

func (g *Gateway) authorize(c *gin.Context, user access.User, nd need) error {
	switch nd {
	case signedIn:
		if !user.Admin {
			return g.restrictList(c, user)
		}
		return nil
	case adminOnly:
		if !user.Admin {
			return events.Errorf(http.StatusForbidden, "only admins may %s %s", c.Request.Method, c.FullPath())
		}
		return nil
	case selfOrAdmin:
		if !user.Admin && c.Param("name") != user.Name {
			return events.Errorf(http.StatusForbidden, "you may manage only your own tokens")
		}
		return nil
	}
	sc, err := g.scope(c)
	if err != nil {
		return err
	}
	if !sc.found {
		if c.FullPath() == "/deployments" && c.Request.Method == http.MethodGet {
			if user.Admin {
				return nil
			}
			return g.restrictList(c, user)
		}
		if user.Admin {
			return nil
		}
		return events.Errorf(http.StatusBadRequest, "project_id is required: say which project the call is about")
	}
	c.Set(projectKey, sc.project.ID)
	if user.Admin {
		return nil
	}
	role, err := g.roleOf(c, sc.project, user)
	if err != nil {
		return err
	}
	want := map[need]access.Role{projRead: access.Viewer, projWrite: access.Editor, projOwn: access.Owner}[nd]
	if !role.Includes(want) {
		if role == access.None {
			// Not even a viewer: answer exactly as if the entity did not exist.
			return sc.hidden
		}
		return events.Errorf(http.StatusForbidden, "your role on project %s is %s; this call needs %s", sc.project.Name, role, want)
	}
	return nil
}

// roleOf is the user's role: the creator owns a project; others have the
// role an owner gave them.
func (g *Gateway) roleOf(ctx context.Context, p projectInfo, user access.User) (access.Role, error) {
	if creatorOf(p).Is(user.Name, user.ID, user.CreatedAt) {
		return access.Owner, nil
	}
	return g.authCache.Role(ctx, p.ID, user.ID)
}

// restrictList narrows a list to the projects the user may see.
func (g *Gateway) restrictList(c *gin.Context, user access.User) error {
	ids, err := g.authCache.ProjectsOf(c, user.ID)
	if err != nil {
		return err
	}
	if c.FullPath() == "/deployments" {
		// The deployer knows no creators: add the user's own projects.
		req := callerRequest(user)
		req.Restricted, req.Visible = true, ids
		own, err := g.projectsAPI.List(c, req)
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, p := range own.Items {
			ids = append(ids, p.ID)
		}
	}
	c.Set(visibleKey, ids)
	return nil
}

// noteProject records which project a call concerns, for the audit log.
func (g *Gateway) noteProject(c *gin.Context) error {
	sc, err := g.scope(c)
	if events.StatusOf(err) == http.StatusBadRequest {
		return err // query and body disagree: refused with auth off too
	}
	if err == nil && sc.found {
		c.Set(projectKey, sc.project.ID)
	}
	return nil // an unknown entity is the handler's to answer
}

// callScope is the project a call concerns and what to answer a caller
// who may not see it.
type callScope struct {
	found   bool // false: the call names no project (lists, admin calls)
	project projectInfo
	// hidden is the answer for a caller without a role on the project:
	// byte for byte the answer for an entity that does not exist.
	hidden error
}

// scope finds the project a call concerns from the entity the path names
// (a project, or the project that owns a deployment), never from a hint
// the caller adds; for other calls it is project_id in the query or the
// body, and when both are given they must name the same project.
func (g *Gateway) scope(c *gin.Context) (callScope, error) {
	route := c.FullPath()
	switch {
	case strings.HasPrefix(route, "/projects/:id"):
		ref := c.Param("id")
		p, err := g.projects.Get(c, ref)
		if err != nil {
			return callScope{}, err
		}
		return callScope{true, p, projectNotFound(ref)}, nil
	case strings.HasPrefix(route, "/deployments/:id"):
		id := c.Param("id")
		p, err := g.owners.project(c, id)
		if err != nil {
			return callScope{}, err
		}
		return callScope{true, p, deploymentNotFound(id)}, nil
	}
	query := c.Query("project_id")
	var body string
	switch c.Request.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		// A data-plane body (an uploaded archive) is never peeked at: it
		// may be gigabytes, and reading it here would consume it.
		if g.streamRoute(c) {
			break
		}
		var err error
		if body, err = bodyProjectID(c, g.cfg.MaxBody); err != nil {
			return callScope{}, err
		}
	}
	ref := body // creates act on the body's project
	if ref == "" {
		ref = query
	}
	if ref == "" {
		return callScope{}, nil
	}
	if query != "" && body != "" && query != body {
		// An id and a name may name one project; anything else is a
		// contradiction the services would each settle differently. The
		// answer is the same whether or not either project exists.
		q, qerr := g.projects.Get(c, query)
		b, berr := g.projects.Get(c, body)
		if qerr != nil || berr != nil || q.ID != b.ID {
			return callScope{}, events.Errorf(http.StatusBadRequest,
				"project_id is %q in the query but %q in the body: give it once, or the same project in both", query, body)
		}
	}
	p, err := g.projects.Get(c, ref)
	if err != nil {
		return callScope{}, err
	}
	return callScope{true, p, projectNotFound(ref)}, nil
}

// projectNotFound is the projects service's own answer for an unknown
// project, so a hidden project cannot be told from a missing one.
func projectNotFound(ref string) error {
	return events.Errorf(http.StatusNotFound, "project %q not found: list projects with GET /projects", ref)
}

// deploymentNotFound is the deployer's own answer for an unknown deployment.
func deploymentNotFound(id string) error {
	return events.Errorf(http.StatusNotFound, "deployment %q not found: list deployments with GET /deployments", id)
}

// bodyProjectID peeks at project_id in a JSON or form body and puts the
// body back for the handler.
func bodyProjectID(c *gin.Context, max int64) (string, error) {
	if c.Request.Body == nil || c.Request.ContentLength == 0 {
		return "", nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, max))
	if err != nil {
		return "", bodyErr(err, max)
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(b))
	c.Request.ContentLength = int64(len(b))
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '{' {
		var v struct {
			ProjectID json.RawMessage `json:"project_id"`
		}
		if json.Unmarshal(t, &v) == nil && len(v.ProjectID) > 0 {
			var s string
			if json.Unmarshal(v.ProjectID, &s) == nil {
				return s, nil
			}
			return strings.Trim(string(v.ProjectID), `"`), nil
		}
		return "", nil
	}
	if strings.HasPrefix(c.GetHeader("Content-Type"), "multipart/form-data") {
		return "", nil // forms with files are not used for project-scoped creates
	}
	vals, err := url.ParseQuery(string(t))
	if err != nil {
		return "", nil
	}
	return vals.Get("project_id"), nil
}

// bootstrapAdmin makes sure a team server has an admin: the token from
// MLPANEL_ADMIN_TOKEN, or else a new one printed once at the first start.
func (g *Gateway) bootstrapAdmin(ctx context.Context) error {
	if g.cfg.AdminToken != "" {
		admin, err := g.ensureUser(ctx, "admin", true)
		if err != nil {
			return err
		}
		hash := access.HashSecret(g.cfg.AdminToken)
		if tok, err := g.access.TokenByHash(ctx, hash); errors.Is(err, access.ErrNotFound) {
			return g.access.AddToken(ctx, access.Token{ID: access.NewID(), User: admin.Name, UserID: admin.ID, Name: "MLPANEL_ADMIN_TOKEN", Hash: hash, CreatedAt: g.now()})
		} else if err == nil && tok.UserID != admin.ID {
			// The admin user was deleted and made again: the configured
			// token is the new one's.
			if err := g.access.DeleteToken(ctx, tok.UserID, tok.ID); err != nil {
				return err
			}
			return g.access.AddToken(ctx, access.Token{ID: access.NewID(), User: admin.Name, UserID: admin.ID, Name: "MLPANEL_ADMIN_TOKEN", Hash: hash, CreatedAt: g.now()})
		} else if err != nil {
			return err
		}
		return nil
	}
	n, err := g.access.CountAdmins(ctx)
	if err != nil || n > 0 {
		return err
	}
	admin, err := g.ensureUser(ctx, "admin", true)
	if err != nil {
		return err
	}
	secret := access.NewSecret()
	if err := g.access.AddToken(ctx, access.Token{ID: access.NewID(), User: admin.Name, UserID: admin.ID, Name: "first admin token", Hash: access.HashSecret(secret), CreatedAt: g.now()}); err != nil {
		return err
	}
	// Printed once: only its hash is stored.
	fmt.Fprintf(g.stderr, "\n  mlpanel first admin token (shown once, keep it): %s\n\n", secret)
	return nil
}

func (g *Gateway) ensureUser(ctx context.Context, name string, admin bool) (access.User, error) {
	u := access.User{Name: name, Admin: admin, CreatedAt: g.now()}
	err := g.access.CreateUser(ctx, &u)
	if errors.Is(err, access.ErrDuplicate) {
		return g.access.User(ctx, name)
	}
	return u, err
}

// callerRequest is a control-plane request made for user.
func callerRequest(u access.User) events.Request {
	return events.Request{Caller: u.Name, CallerID: u.ID, CallerSince: u.CreatedAt}
}

// creatorOf is who created p, as the ownership rule needs it.
func creatorOf(p projectInfo) events.Creator {
	return events.Creator{ID: p.CreatedByID, Name: p.CreatedBy, At: p.CreatedAt}
}
