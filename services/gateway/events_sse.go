package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/gateway/access"
)

// GET /events: the CloudEvents of the MLPANEL_EVENTS stream as
// Server-Sent Events, for browsers and any HTTP client. Each client gets
// its own ordered (ephemeral, in-memory) consumer, so nothing is left in
// JetStream when it goes away; the SSE id is the stream sequence, so a
// client resumes exactly where it stopped with Last-Event-ID.

// sseHeartbeat keeps idle proxies and browsers from closing a quiet stream.
var sseHeartbeat = 15 * time.Second

// roleTTL bounds how long one stream trusts a role it looked up, so a
// member removed from a project stops seeing its events soon after.
const roleTTL = 10 * time.Second

func (g *Gateway) followEvents(c *gin.Context) {
	start, err := resumePoint(c)
	if err != nil {
		writeError(c, err)
		return
	}
	see, err := g.eventFilter(c)
	if err != nil {
		writeError(c, err)
		return
	}
	js, err := jetstream.New(g.nc)
	if err != nil {
		writeError(c, fmt.Errorf("opening JetStream for /events: %w", err))
		return
	}
	ctx := c.Request.Context()
	stream, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		writeError(c, events.Errorf(http.StatusServiceUnavailable, "the event stream %s is not there yet (%v): try again shortly", events.StreamName, err))
		return
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SubjectPrefix + ".>"},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
	if start > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		writeError(c, fmt.Errorf("following %s: %w", events.StreamName, err))
		return
	}
	it, err := cons.Messages()
	if err != nil {
		writeError(c, fmt.Errorf("following %s: %w", events.StreamName, err))
		return
	}
	defer it.Stop()
	msgs := make(chan jetstream.Msg)
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				return // Stop was called, or the connection closed
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise hold events back
	c.Status(http.StatusOK)
	// A comment first, so the client knows it is connected before any event.
	fmt.Fprintf(c.Writer, ": following %s\nretry: 3000\n\n", events.StreamName)
	c.Writer.Flush()

	tick := time.NewTicker(sseHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if g.cfg.Auth {
				// A stream outlives its checks: end it once the token is
				// revoked or the user deleted, as the next call would fail.
				if _, err := g.caller(c); err != nil {
					fmt.Fprintf(c.Writer, "event: error\ndata: %s\n\n", strings.ReplaceAll(err.Error(), "\n", " "))
					c.Writer.Flush()
					return
				}
			}
			if _, err := fmt.Fprint(c.Writer, ": keep-alive\n\n"); err != nil {
				return
			}
			c.Writer.Flush()
		case m, ok := <-msgs:
			if !ok {
				return
			}
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			if !see(ctx, m.Subject(), m.Data()) {
				continue
			}
			// CloudEvents JSON is one line; SSE data may not contain newlines.
			data := strings.ReplaceAll(string(m.Data()), "\n", "")
			if _, err := fmt.Fprintf(c.Writer, "id: %d\ndata: %s\n\n", meta.Sequence.Stream, data); err != nil {
				return
			}
			c.Writer.Flush()
		}
	}
}

// resumePoint is the first stream sequence to send: the one after
// Last-Event-ID (header, or query parameter for clients that cannot set
// headers), or 0 for "only new events".
func resumePoint(c *gin.Context) (uint64, error) {
	v := c.GetHeader("Last-Event-ID")
	if v == "" {
		v = c.Query("last_event_id")
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, events.Errorf(http.StatusBadRequest, "Last-Event-ID %q is not an event id from this stream: send the id: of the last event you received, or none for new events only", v)
	}
	return n + 1, nil
}

// eventFilter decides, per event, whether the caller may see it: admins
// (and everyone with auth off) see all; others see the events of projects
// they have a role on, and of deployments of those projects. Events of
// any other entity are hidden (deny by default).
func (g *Gateway) eventFilter(c *gin.Context) (func(ctx context.Context, subject string, data []byte) bool, error) {
	all := func(context.Context, string, []byte) bool { return true }
	if !g.cfg.Auth {
		return all, nil
	}
	v, ok := c.Get(userKey)
	if !ok {
		return nil, events.Errorf(http.StatusUnauthorized, "sign in first: send Authorization: Bearer <token>")
	}
	user := v.(access.User)
	if user.Admin {
		return all, nil
	}
	type seen struct {
		ok bool
		at time.Time
	}
	roles := map[string]seen{} // by project id; one stream is one goroutine
	// mayRead asks the same question as every other call (roleOf: the
	// creator's account owns a project, others have the role they were
	// given), on the project as the event shows it or, for a deployment's
	// event, as the projects service has it.
	mayRead := func(ctx context.Context, p projectInfo) bool {
		if p.ID == "" {
			return false
		}
		if s, ok := roles[p.ID]; ok && time.Since(s.at) < roleTTL {
			return s.ok
		}
		role, err := g.roleOf(ctx, p, user)
		ok := err == nil && role.Includes(access.Viewer)
		roles[p.ID] = seen{ok, time.Now()}
		return ok
	}
	return func(ctx context.Context, subject string, data []byte) bool {
		// mlpanel.events.<entity>.<id>.<type>, or for registry and run
		// events mlpanel.events.<entity>.<project_id>.<key>.<type>
		parts := strings.Split(subject, ".")
		if len(parts) == 6 && (parts[2] == events.EntityModel || parts[2] == events.EntityRun) {
			p, err := g.projects.Get(ctx, parts[3])
			return err == nil && mayRead(ctx, p)
		}
		if len(parts) != 5 {
			return false
		}
		var body struct {
			Data json.RawMessage `json:"data"`
		}
		if json.Unmarshal(data, &body) != nil {
			return false
		}
		switch parts[2] {
		case "project":
			var p projectInfo
			if json.Unmarshal(body.Data, &p) != nil {
				return false
			}
			// The subject's id, not the body's: the subject is what the
			// owning service published on.
			p.ID = parts[3]
			return mayRead(ctx, p)
		case "deployment":
			var d struct {
				ProjectID string `json:"project_id"`
			}
			if json.Unmarshal(body.Data, &d) != nil || d.ProjectID == "" {
				return false
			}
			p, err := g.projects.Get(ctx, d.ProjectID)
			return err == nil && mayRead(ctx, p)
		}
		return false
	}, nil
}
