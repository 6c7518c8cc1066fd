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
	projectKey = "mlpanel.project" // the project a call concerns, for audit
	visibleKey = "mlpanel.visible" // what a restricted list may show
)

// authenticate identifies the caller by token and checks the route's
// requirement. With auth off everyone may do everything, as on a laptop.
func (g *Gateway) authenticate(c *gin.Context) {
	route := c.FullPath()
	if !g.cfg.Auth {
		if mutating(c.Request.Method, route) {
			g.noteProject(c) // only for the audit log
		}
		c.Next()
		return
	}
	nd := requirement(c.Request.Method, route)
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
		c.Header("WWW-Authenticate", `Bearer realm="mlpanel"`)
		writeError(c, err)
		return
	}
	c.Set(callerKey, user.Name)
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
	if secret == "" {
		return access.User{}, events.Errorf(http.StatusUnauthorized, "authentication required: send Authorization: Bearer <token> (for MLflow clients set MLFLOW_TRACKING_TOKEN)")
	}
	tok, err := g.access.TokenByHash(c, access.HashSecret(secret))
	if errors.Is(err, access.ErrNotFound) {
		return access.User{}, events.Errorf(http.StatusUnauthorized, "invalid or revoked token: ask an admin for a new one")
	}
	if err != nil {
		return access.User{}, err
	}
	u, err := g.access.User(c, tok.User)
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
	ref, err := g.projectRef(c)
	if err != nil {
		return err
	}
	if ref == "" {
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
	p, err := g.projects.get(c, ref)
	if err != nil {
		return err
	}
	c.Set(projectKey, p.ID)
	if user.Admin {
		return nil
	}
	role, err := g.roleOf(c, p, user.Name)
	if err != nil {
		return err
	}
	want := map[need]access.Role{projRead: access.Viewer, projWrite: access.Editor, projOwn: access.Owner}[nd]
	if !role.Includes(want) {
		if role == access.None {
			// Not even a viewer: do not confirm the project exists.
			return events.Errorf(http.StatusNotFound, "project %q not found: list projects with GET /projects", ref)
		}
		return events.Errorf(http.StatusForbidden, "your role on project %s is %s; this call needs %s", p.Name, role, want)
	}
	return nil
}

// roleOf is the user's role: the creator owns a project; others have the
// role an owner gave them.
func (g *Gateway) roleOf(ctx context.Context, p projectInfo, user string) (access.Role, error) {
	if p.CreatedBy != "" && p.CreatedBy == user {
		return access.Owner, nil
	}
	return g.access.Role(ctx, p.ID, user)
}

// restrictList narrows a list to the projects the user may see.
func (g *Gateway) restrictList(c *gin.Context, user access.User) error {
	ids, err := g.access.ProjectsOf(c, user.Name)
	if err != nil {
		return err
	}
	if c.FullPath() == "/deployments" {
		// The deployer knows no creators: add the user's own projects.
		var own events.List[projectInfo]
		req := events.Request{Caller: user.Name, Restricted: true, Visible: ids}
		if err := events.Call(c, g.nc, "mlpanel.projects.list", req, &own); err != nil {
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
func (g *Gateway) noteProject(c *gin.Context) {
	ref, err := g.projectRef(c)
	if err != nil || ref == "" {
		return
	}
	if p, err := g.projects.get(c, ref); err == nil {
		c.Set(projectKey, p.ID)
	}
}

// projectRef finds the project a call is about: the path of /projects/:id,
// project_id in the query or body, or the deployment's project.
func (g *Gateway) projectRef(c *gin.Context) (string, error) {
	route := c.FullPath()
	if strings.HasPrefix(route, "/projects/:id") {
		return c.Param("id"), nil
	}
	if v := c.Query("project_id"); v != "" {
		return v, nil
	}
	if strings.HasPrefix(route, "/deployments/:id") {
		var d struct {
			ProjectID string `json:"project_id"`
		}
		err := events.Call(c, g.nc, "mlpanel.deployer.get", events.Request{Path: map[string]string{"id": c.Param("id")}}, &d)
		if err != nil {
			return "", err
		}
		return d.ProjectID, nil
	}
	// A data-plane body (an uploaded archive) is never peeked at: it may
	// be gigabytes, and reading it here would consume it.
	if (c.Request.Method == http.MethodPost || c.Request.Method == http.MethodPut) && !streamRoute(route) {
		return bodyProjectID(c, g.cfg.MaxBody)
	}
	return "", nil
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
		if err := g.ensureUser(ctx, "admin", true); err != nil {
			return err
		}
		hash := access.HashSecret(g.cfg.AdminToken)
		if _, err := g.access.TokenByHash(ctx, hash); errors.Is(err, access.ErrNotFound) {
			return g.access.AddToken(ctx, access.Token{ID: access.NewID(), User: "admin", Name: "MLPANEL_ADMIN_TOKEN", Hash: hash, CreatedAt: g.now()})
		} else if err != nil {
			return err
		}
		return nil
	}
	n, err := g.access.CountAdmins(ctx)
	if err != nil || n > 0 {
		return err
	}
	if err := g.ensureUser(ctx, "admin", true); err != nil {
		return err
	}
	secret := access.NewSecret()
	if err := g.access.AddToken(ctx, access.Token{ID: access.NewID(), User: "admin", Name: "first admin token", Hash: access.HashSecret(secret), CreatedAt: g.now()}); err != nil {
		return err
	}
	// Printed once: only its hash is stored.
	fmt.Fprintf(g.stderr, "\n  mlpanel first admin token (shown once, keep it): %s\n\n", secret)
	return nil
}

func (g *Gateway) ensureUser(ctx context.Context, name string, admin bool) error {
	err := g.access.CreateUser(ctx, access.User{Name: name, Admin: admin, CreatedAt: g.now()})
	if errors.Is(err, access.ErrDuplicate) {
		return nil
	}
	return err
}
