package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/gateway/access"
)

// auditMutations records every mutating call once it is handled: who,
// what, which project, when, and the result.
func (g *Gateway) auditMutations(c *gin.Context) {
	c.Next()
	g.auditCall(c)
}

// auditedKey marks a call whose entry is recorded.
const auditedKey = "mlpanel.audited"

// auditCall records a mutating call's entry, once, and returns when it is
// durable: in the journal, or acknowledged by the queue (keepAudit). The
// answer must not be complete before that (a gateway killed right after
// answering loses no entry): net/http sends the end of an answer once the
// handler chain has returned, after auditMutations, and the MLflow proxy,
// which sends its answers early (sendNow), calls this first.
func (g *Gateway) auditCall(c *gin.Context) {
	if g.access == nil || !mutating(c.Request.Method, c.FullPath()) || c.GetBool(auditedKey) {
		return
	}
	c.Set(auditedKey, true)
	user := c.GetString(callerKey)
	if user == "" {
		user = "anonymous" // auth is off or the call was refused before we knew
	}
	e := access.Entry{
		ID: access.NewID(), Time: g.now(), User: user,
		Method: c.Request.Method, Path: c.Request.URL.Path, Route: c.FullPath(),
		Project: c.GetString(projectKey), Status: answeredStatus(c), // observe.go: 499 for a client gone
		RequestID: c.Writer.Header().Get("X-Request-ID"), Remote: c.ClientIP(),
	}
	// The caller has its answer; the record must not die with its context.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 5*time.Second)
	defer cancel()
	if err := g.keepAudit(ctx, e); err != nil {
		g.logFor(c).Error("recording audit entry", "err", err, "path", e.Path)
	}
}

// listAudit answers GET /audit (admins only).
func (g *Gateway) listAudit(c *gin.Context) (int, any, error) {
	lp, err := listParams(c)
	if err != nil {
		return 0, nil, err
	}
	q := access.AuditQuery{User: c.Query("user"), Skip: int64(lp.Start)}
	if lp.End > 0 {
		q.Limit = int64(lp.End - lp.Start)
	}
	if ref := c.Query("project_id"); ref != "" {
		p, err := g.projects.Get(c, ref)
		if err != nil {
			return 0, nil, err
		}
		q.Project = p.ID
	}
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		// Present but empty is no date-time either: the document
		// says format date-time, so `until=` is a 400, not "no bound".
		if v, ok := c.GetQuery(name); ok {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return 0, nil, events.Errorf(http.StatusBadRequest, "%s=%q: want an RFC 3339 time such as 2026-01-31T12:00:00Z", name, v)
			}
			*dst = t
		}
	}
	// Show the calls made before this one: wait for the journal and the queue.
	dctx, cancel := context.WithTimeout(c, 5*time.Second)
	if g.journal != nil {
		g.journal.wait(dctx)
	}
	if g.audit != nil {
		g.audit.drain(dctx)
	}
	cancel()
	entries, total, err := g.access.Audit(c, q)
	if err != nil {
		return 0, nil, err
	}
	setTotal(c, int(total))
	return http.StatusOK, entries, nil
}
