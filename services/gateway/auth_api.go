package gateway

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/gateway/access"
)

// Users, tokens and project members are the gateway's own data, so
// their handlers (routes.go) answer without NATS.

// withAccess answers 503 until the store is ready and writes errors the
// usual way.
func (g *Gateway) withAccess(h func(c *gin.Context) (int, any, error)) gin.HandlerFunc {
	return whenReady(func() bool { return g.access != nil }, h)
}

// whenReady answers 503 until ready says the part h needs has started,
// then answers with h's status and value, or its error the usual way.
func whenReady(ready func() bool, h func(c *gin.Context) (int, any, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !ready() {
			writeError(c, events.Errorf(http.StatusServiceUnavailable, "the gateway is still starting: try again"))
			return
		}
		status, v, err := h(c)
		if err != nil {
			writeError(c, err)
			return
		}
		c.JSON(status, v)
	}
}

func (g *Gateway) me(c *gin.Context) (int, any, error) {
	if !g.cfg.Auth {
		return http.StatusOK, gin.H{"name": "", "admin": true, "auth": false}, nil
	}
	u := c.MustGet(userKey).(access.User)
	return http.StatusOK, gin.H{"name": u.Name, "admin": u.Admin, "auth": true}, nil
}

func (g *Gateway) listUsers(c *gin.Context) (int, any, error) {
	us, err := g.access.Users(c)
	if err != nil {
		return 0, nil, err
	}
	lp, err := listParams(c)
	if err != nil {
		return 0, nil, err
	}
	page := events.Page(us, lp, func(a, b access.User) bool { return a.Name < b.Name })
	setTotal(c, page.Total)
	return http.StatusOK, page.Items, nil
}

type userInput struct {
	Name  string `json:"name"`
	Admin bool   `json:"admin"`
}

func (g *Gateway) createUser(c *gin.Context) (int, any, error) {
	var in userInput
	if err := decodeBody(c, g.cfg.MaxBody, &in); err != nil {
		return 0, nil, err
	}
	if err := access.ValidateUserName(in.Name); err != nil {
		return 0, nil, events.Errorf(http.StatusBadRequest, "%v", err)
	}
	u := access.User{Name: in.Name, Admin: in.Admin, CreatedAt: g.now()}
	if err := g.access.CreateUser(c, &u); errors.Is(err, access.ErrDuplicate) {
		return 0, nil, events.Errorf(http.StatusConflict, "user %q already exists", in.Name)
	} else if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, u, nil
}

func (g *Gateway) getUser(c *gin.Context) (int, any, error) {
	u, err := g.pathUser(c)
	return http.StatusOK, u, err
}

// pathUser is the user named in the path.
func (g *Gateway) pathUser(c *gin.Context) (access.User, error) {
	u, err := g.access.User(c, c.Param("name"))
	if errors.Is(err, access.ErrNotFound) {
		return u, events.Errorf(http.StatusNotFound, "user %q not found: list users with GET /users", c.Param("name"))
	}
	return u, err
}

func (g *Gateway) deleteUser(c *gin.Context) (int, any, error) {
	name := c.Param("name")
	if name == c.GetString(callerKey) {
		return 0, nil, events.Errorf(http.StatusConflict, "you cannot delete yourself: ask another admin")
	}
	err := g.access.DeleteUser(c, name)
	if errors.Is(err, access.ErrNotFound) {
		return 0, nil, events.Errorf(http.StatusNotFound, "user %q not found", name)
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"name": name, "deleted": true}, nil
}

func (g *Gateway) listTokens(c *gin.Context) (int, any, error) {
	u, err := g.pathUser(c)
	if err != nil {
		return 0, nil, err
	}
	ts, err := g.access.Tokens(c, u.ID)
	if err != nil {
		return 0, nil, err
	}
	setTotal(c, len(ts))
	return http.StatusOK, ts, nil
}

// createToken makes a token and shows its secret this once.
func (g *Gateway) createToken(c *gin.Context) (int, any, error) {
	u, err := g.pathUser(c)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Name string `json:"name"`
	}
	if err := decodeBody(c, g.cfg.MaxBody, &in); err != nil {
		return 0, nil, err
	}
	if len(in.Name) > 200 {
		return 0, nil, events.Errorf(http.StatusBadRequest, "token name is longer than 200 characters")
	}
	secret := access.NewSecret()
	t := access.Token{ID: access.NewID(), User: u.Name, UserID: u.ID, Name: in.Name, Hash: access.HashSecret(secret), CreatedAt: g.now()}
	if err := g.access.AddToken(c, t); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, gin.H{"id": t.ID, "user": t.User, "name": t.Name, "createdAt": t.CreatedAt,
		"token": secret, "note": "the token is shown only now: store it"}, nil
}

func (g *Gateway) deleteToken(c *gin.Context) (int, any, error) {
	u, err := g.pathUser(c)
	if err != nil {
		return 0, nil, err
	}
	err = g.access.DeleteToken(c, u.ID, c.Param("token"))
	if errors.Is(err, access.ErrNotFound) {
		return 0, nil, events.Errorf(http.StatusNotFound, "user %q has no token %q", c.Param("name"), c.Param("token"))
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"id": c.Param("token"), "deleted": true}, nil
}

// listMembers lists a project's members, its creator first as owner.
func (g *Gateway) listMembers(c *gin.Context) (int, any, error) {
	p, err := g.projects.Get(c, c.Param("id"))
	if err != nil {
		return 0, nil, err
	}
	ms, err := g.access.Members(c, p.ID)
	if err != nil {
		return 0, nil, err
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].User < ms[j].User })
	if creator, ok, err := g.creator(c, p); err != nil {
		return 0, nil, err
	} else if ok {
		ms = append([]access.Member{{Project: p.ID, User: creator.Name, Role: access.Owner}}, ms...)
	}
	setTotal(c, len(ms))
	return http.StatusOK, ms, nil
}

func (g *Gateway) setMember(c *gin.Context) (int, any, error) {
	p, err := g.projects.Get(c, c.Param("id"))
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Role string `json:"role"`
	}
	if err := decodeBody(c, g.cfg.MaxBody, &in); err != nil {
		return 0, nil, err
	}
	role, err := access.ParseRole(in.Role)
	if err != nil {
		return 0, nil, events.Errorf(http.StatusBadRequest, "%v", err)
	}
	user := c.Param("user")
	u, err := g.access.User(c, user)
	if errors.Is(err, access.ErrNotFound) {
		return 0, nil, events.Errorf(http.StatusNotFound, "user %q not found: an admin creates users with POST /users", user)
	} else if err != nil {
		return 0, nil, err
	}
	if creatorOf(p).Is(u.Name, u.ID, u.CreatedAt) {
		return 0, nil, events.Errorf(http.StatusConflict, "%s created project %s and always owns it", user, p.Name)
	}
	m := access.Member{Project: p.ID, User: u.Name, UserID: u.ID, Role: role}
	if err := g.access.SetMember(c, m); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, m, nil
}

func (g *Gateway) removeMember(c *gin.Context) (int, any, error) {
	p, err := g.projects.Get(c, c.Param("id"))
	if err != nil {
		return 0, nil, err
	}
	u, err := g.access.User(c, c.Param("user"))
	if err == nil {
		err = g.access.RemoveMember(c, p.ID, u.ID)
	}
	if errors.Is(err, access.ErrNotFound) {
		return 0, nil, events.Errorf(http.StatusNotFound, "%s is not a member of project %s", c.Param("user"), p.Name)
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"project_id": p.ID, "user": c.Param("user"), "deleted": true}, nil
}

// creator is the account that created p, if it still exists.
func (g *Gateway) creator(ctx context.Context, p projectInfo) (access.User, bool, error) {
	if p.CreatedBy == "" {
		return access.User{}, false, nil
	}
	u, err := g.access.User(ctx, p.CreatedBy)
	if errors.Is(err, access.ErrNotFound) {
		return u, false, nil
	}
	if err != nil {
		return u, false, err
	}
	return u, creatorOf(p).Is(u.Name, u.ID, u.CreatedAt), nil
}

func setTotal(c *gin.Context, n int) {
	c.Header("X-Total-Count", strconv.Itoa(n))
	c.Header("Access-Control-Expose-Headers", "X-Total-Count")
}

// decodeBody reads a JSON or form body into v through the same rules as
// control-plane calls.
func decodeBody(c *gin.Context, max int64, v any) error {
	r, err := buildRequest(c, max)
	if err != nil {
		return err
	}
	return r.DecodeBody(v)
}
