package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/archive"
)

// Projects that move (issue 17). Export and import are data plane: the
// archive streams between the client and the data home's files, which
// the projects service names; it never rides NATS and is never held in
// memory whole. Clone moves nothing through the gateway.

func (g *Gateway) exportProject(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), g.cfg.RequestTimeout)
	plan, err := g.projectsAPI.Export(ctx, c.Param("id"), c.GetString(callerKey))
	cancel()
	if err != nil {
		writeError(c, err)
		return
	}
	defer g.release(c, plan.Dir)
	meta, err := os.ReadFile(plan.Meta)
	if err != nil {
		writeError(c, fmt.Errorf("reading the export of project %s (the gateway needs the data home mounted, as the projects service has it): %w", c.Param("id"), err))
		return
	}
	if meta, err = g.withMembers(c.Request.Context(), meta); err != nil {
		writeError(c, err)
		return
	}
	c.Header("Content-Type", "application/gzip")
	c.Header("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": plan.Filename}))
	c.Status(http.StatusOK)
	if err := archive.Write(c.Writer, archive.Project{Meta: meta, DB: plan.DB, Artifacts: plan.Artifacts}); err != nil {
		g.logFor(c).Error("export cut short", "project", c.Param("id"), "err", err)
		abortStream(c)
	}
}

// abortStream cuts the connection so the client sees a failed transfer
// instead of a well-formed response with a short archive.
func abortStream(c *gin.Context) {
	rc := http.NewResponseController(c.Writer)
	_ = rc.Flush()
	if conn, _, err := rc.Hijack(); err == nil {
		_ = conn.Close()
	}
}

func (g *Gateway) release(c *gin.Context, dir string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 10*time.Second)
	defer cancel()
	if err := g.projectsAPI.ReleaseExport(ctx, dir); err != nil {
		g.logFor(c).Warn("releasing export staging folder", "dir", dir, "err", err)
	}
}

// importProject creates a project from an archive sent as the body
// (application/gzip or octet-stream, name and description in the query),
// as the "file" part of a multipart form (name and description as parts
// before it), or, for admins, from a server-side path in a JSON body.
func (g *Gateway) importProject(c *gin.Context) {
	in := map[string]any{}
	if v := c.Query("name"); v != "" {
		in["name"] = v
	}
	if v, ok := c.GetQuery("description"); ok {
		in["description"] = v
	}
	ct, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	var err error
	switch ct {
	case "application/json":
		err = g.importFromPath(c, in)
	case "multipart/form-data":
		err = g.importFromForm(c, in)
	case "application/gzip", "application/x-gzip", "application/octet-stream", "application/x-tar":
		err = g.upload(c, c.Request.Body, in)
	default:
		err = events.Errorf(http.StatusUnsupportedMediaType,
			"send the archive as the body with Content-Type application/gzip, as the file part of a multipart form, or (admins) {\"path\": ...} as JSON; got %q", ct)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), g.cfg.RequestTimeout)
	defer cancel()
	if up, ok := in["upload"].(string); ok {
		defer os.Remove(up) // the service removes it too; this covers a call that never reached it
	}
	imp, err := g.projectsAPI.Import(ctx, in, c.GetString(callerKey))
	if err != nil {
		writeError(c, err)
		return
	}
	// The project exists from here on: a member that cannot be restored
	// is reported, not a reason to fail the import.
	rep, err := g.restoreMembers(ctx, imp.Project, imp.ArchiveMembers)
	if err != nil {
		g.logFor(c).Warn("restoring the members of an imported project", "project", imp.ID, "err", err)
		rep.Skipped = append(rep.Skipped, skippedMember{Reason: "restoring members failed (" + err.Error() + "): add them with PUT /projects/{id}/members/{user}"})
	}
	c.JSON(http.StatusCreated, struct {
		projectInfo
		Members membersReport `json:"members"`
	}{imp.Project, rep})
}

func (g *Gateway) importFromPath(c *gin.Context, in map[string]any) error {
	var req struct {
		Path        string  `json:"path"`
		Name        string  `json:"name"`
		Description *string `json:"description"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, g.cfg.MaxBody))
	if err := dec.Decode(&req); err != nil {
		return events.Errorf(http.StatusBadRequest, "malformed JSON body: want {\"path\": \"<archive under MLPANEL_IMPORT_ROOT>\", \"name\": ...}")
	}
	if req.Path == "" {
		return events.Errorf(http.StatusBadRequest, "path is required in a JSON import; to upload an archive send it with Content-Type application/gzip")
	}
	if g.cfg.Auth {
		u, err := g.access.User(c, c.GetString(callerKey))
		if err != nil || !u.Admin {
			return events.Errorf(http.StatusForbidden, "only admins may import from a server-side path: upload the archive instead")
		}
	}
	in["path"] = req.Path
	if req.Name != "" {
		in["name"] = req.Name
	}
	if req.Description != nil {
		in["description"] = *req.Description
	}
	return nil
}

func (g *Gateway) importFromForm(c *gin.Context, in map[string]any) error {
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return events.Errorf(http.StatusBadRequest, "malformed multipart body: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return events.Errorf(http.StatusBadRequest, "the form has no \"file\" part: attach the .tar.gz as file")
		}
		if err != nil {
			return events.Errorf(http.StatusBadRequest, "malformed multipart body: %v", err)
		}
		switch part.FormName() {
		case "name", "description":
			v, err := io.ReadAll(io.LimitReader(part, 8<<10))
			if err != nil {
				return events.Errorf(http.StatusBadRequest, "reading form field %s: %v", part.FormName(), err)
			}
			in[part.FormName()] = string(v)
		case "file":
			// Fields after the file are not read: the archive is the last
			// thing the gateway waits for.
			return g.upload(c, part, in)
		}
	}
}

// upload streams an archive into a file the projects service names.
func (g *Gateway) upload(c *gin.Context, body io.Reader, in map[string]any) error {
	ctx, cancel := context.WithTimeout(c.Request.Context(), g.cfg.RequestTimeout)
	upload, err := g.projectsAPI.ImportSlot(ctx)
	cancel()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(upload, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("storing the upload (the gateway needs the data home mounted, as the projects service has it): %w", err)
	}
	_, err = io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(upload)
		return events.Errorf(http.StatusBadRequest, "the upload broke off: %v", err)
	}
	in["upload"] = upload
	return nil
}
