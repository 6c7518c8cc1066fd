package gateway

// Authorisation: whether the caller may make the call, decided on the
// real owner of the entity the path names (scope.go); deny by default.

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/gateway/access"
)

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
	case hookOwn:
		if user.Admin {
			return nil
		}
		return g.authorizeWebhook(c, user)
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

// callerRequest is a control-plane request made for user.
func callerRequest(u access.User) events.Request {
	return events.Request{Caller: u.Name, CallerID: u.ID, CallerSince: u.CreatedAt}
}

// creatorOf is who created p, as the ownership rule needs it.
func creatorOf(p projectInfo) events.Creator {
	return events.Creator{ID: p.CreatedByID, Name: p.CreatedBy, At: p.CreatedAt}
}
