package gateway

// The project a call concerns: from the entity its path names (a project,
// or the project owning a deployment), else project_id in the query or
// the body, which is peeked at and put back.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
)

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
