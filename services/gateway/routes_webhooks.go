package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/gateway/access"
	"github.com/mlpanel/mlpanel/services/gateway/webhooks"
)

// Signed webhooks: subscriptions managed over REST by admins (any
// project) and project owners (their projects), delivered by
// webhooks.Dispatcher from durable consumers of MLPANEL_EVENTS.

// WebhooksConfig is the webhooks' settings.
type WebhooksConfig struct {
	// Allow lists the CIDRs (comma-separated) where loopback or private
	// webhook URLs may point; link-local and metadata addresses never.
	Allow string `env:"MLPANEL_WEBHOOK_ALLOW"`
	// SecretKey encrypts webhook secrets at rest; empty: a key generated
	// once and kept under MLPANEL_HOME.
	SecretKey string `env:"MLPANEL_SECRET_KEY"`
	// Home is where a generated key is kept.
	Home string `env:"MLPANEL_HOME" envDefault:".mlpanel"`
	// RetryFor bounds how long one delivery is retried.
	RetryFor time.Duration `env:"MLPANEL_WEBHOOK_RETRY_FOR" envDefault:"24h"`
	// MaxBackoff caps the wait between two attempts of one delivery.
	MaxBackoff time.Duration `env:"MLPANEL_WEBHOOK_MAX_BACKOFF" envDefault:"10m"`
}

// check refuses a malformed allow-list at start.
func (c WebhooksConfig) check() error {
	_, err := webhooks.ParseAllow(c.Allow)
	return err
}

// webhookAPI is what the handlers share.
type webhookAPI struct {
	store    *webhooks.Store
	sealer   *webhooks.Sealer
	guard    webhooks.Guard
	dispatch *webhooks.Dispatcher
}

// startWebhooks opens the store and the key and starts delivering; the
// gateway's Serve calls it once its address is known.
func (g *Gateway) startWebhooks(ctx context.Context, self string) error {
	cfg := g.cfg.Webhooks
	allow, err := webhooks.ParseAllow(cfg.Allow)
	if err != nil {
		return err
	}
	home := cfg.Home
	if home == "" {
		home = ".mlpanel"
	}
	key, err := webhooks.LoadKey(cfg.SecretKey, filepath.Clean(home))
	if err != nil {
		return err
	}
	sealer, err := webhooks.NewSealer(key)
	if err != nil {
		return err
	}
	store, err := webhooks.NewStore(ctx, g.db)
	if err != nil {
		return err
	}
	guard := webhooks.Guard{Allow: allow}
	for _, a := range []string{self, g.cfg.Addr} {
		if h, p, err := net.SplitHostPort(a); err == nil && p != "0" {
			guard.Self = append(guard.Self, webhooks.HostPort{Host: h, Port: p})
			if h == "" || h == "0.0.0.0" || h == "::" {
				guard.Self = append(guard.Self, webhooks.HostPort{Host: "0.0.0.0", Port: p}, webhooks.HostPort{Host: "localhost", Port: p})
			}
		}
	}
	if u := g.publicURL; u != nil {
		p := u.Port()
		if p == "" {
			p = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		guard.Self = append(guard.Self, webhooks.HostPort{Host: u.Hostname(), Port: p})
	}
	js, err := jetstream.New(g.nc)
	if err != nil {
		return fmt.Errorf("opening JetStream for webhooks: %w", err)
	}
	if _, err := events.EnsureStream(ctx, js); err != nil {
		return err
	}
	d := webhooks.NewDispatcher(js, store, sealer, guard,
		webhooks.Config{RetryFor: cfg.RetryFor, MaxBackoff: cfg.MaxBackoff}, g.log)
	g.hooks = &webhookAPI{store: store, sealer: sealer, guard: guard, dispatch: d}
	go d.Run(ctx)
	return nil
}

func (g *Gateway) withWebhooks(h func(c *gin.Context) (int, any, error)) gin.HandlerFunc {
	return whenReady(func() bool { return g.hooks != nil }, h)
}

// webhookCaller is the caller when auth is on; nil with auth off, when
// everyone may do everything.
func (g *Gateway) webhookCaller(c *gin.Context) *access.User {
	if !g.cfg.Auth {
		return nil
	}
	u := c.MustGet(userKey).(access.User)
	return &u
}

// ownsProject checks that the caller owns ref: a caller without a role
// gets the answer for a project that does not exist, one with a lesser
// role a 403 that says what is needed.
func (g *Gateway) ownsProject(ctx context.Context, u *access.User, ref string) (projectInfo, error) {
	p, err := g.projects.Get(ctx, ref)
	if err != nil {
		return p, err
	}
	if u == nil || u.Admin {
		return p, nil
	}
	role, err := g.roleOf(ctx, p, *u)
	if err != nil {
		return p, err
	}
	if role == access.None {
		return p, projectNotFound(ref)
	}
	if !role.Includes(access.Owner) {
		return p, events.Errorf(http.StatusForbidden, "your role on project %s is %s; webhooks of a project are managed by its owners and admins", p.Name, role)
	}
	return p, nil
}

// mayManage: admins manage every webhook, owners those whose projects
// are all theirs.
func (g *Gateway) mayManage(ctx context.Context, u *access.User, h webhooks.Webhook) bool {
	if u == nil || u.Admin {
		return true
	}
	if len(h.Projects) == 0 {
		return false
	}
	for _, id := range h.Projects {
		if _, err := g.ownsProject(ctx, u, id); err != nil {
			return false
		}
	}
	return true
}

func webhookNotFound(id string) error {
	return events.Errorf(http.StatusNotFound, "webhook %q not found: list webhooks with GET /webhooks", id)
}

// webhookKey holds the path's webhook once authorizeWebhook has read it.
const webhookKey = "mlpanel.webhook"

// authorizeWebhook is the hookOwn rule for a caller who is not an admin:
// the webhook of the path must name only projects they own (else it does
// not exist for them); a create must name projects, all of them theirs.
func (g *Gateway) authorizeWebhook(c *gin.Context, u access.User) error {
	if g.hooks == nil {
		return events.Errorf(http.StatusServiceUnavailable, "the gateway is still starting: try again")
	}
	if id := c.Param("id"); id != "" {
		h, err := g.hooks.store.Get(c, id)
		if errors.Is(err, webhooks.ErrNotFound) || (err == nil && !g.mayManage(c, &u, h)) {
			return webhookNotFound(id)
		}
		if err != nil {
			return err
		}
		c.Set(webhookKey, h)
		return nil
	}
	in, err := peekWebhookInput(c, g.cfg.MaxBody)
	if err != nil {
		return err
	}
	refs := in.refs()
	if len(refs) == 0 {
		return events.Errorf(http.StatusForbidden, "a webhook for every project needs an admin: give projects (ids or names of projects you own)")
	}
	for _, ref := range refs {
		if strings.TrimSpace(ref) == "" {
			continue // the handler refuses it with what to do
		}
		p, err := g.ownsProject(c, &u, ref)
		if err != nil {
			return err
		}
		c.Set(projectKey, p.ID) // for the audit entry
	}
	return nil
}

// peekWebhookInput decodes a create's body and puts it back for the
// handler.
func peekWebhookInput(c *gin.Context, max int64) (webhookInput, error) {
	var in webhookInput
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, max))
	if err != nil {
		return in, bodyErr(err, max)
	}
	restore := func() {
		c.Request.Body = io.NopCloser(bytes.NewReader(raw))
		c.Request.ContentLength = int64(len(raw))
	}
	restore()
	err = decodeBody(c, max, &in)
	restore()
	return in, err
}

// pathWebhook is the webhook of the path: the one authorizeWebhook read
// for a caller who is not an admin, else the store's.
func (g *Gateway) pathWebhook(c *gin.Context) (webhooks.Webhook, error) {
	if h, ok := c.Get(webhookKey); ok {
		return h.(webhooks.Webhook), nil
	}
	id := c.Param("id")
	h, err := g.hooks.store.Get(c, id)
	if errors.Is(err, webhooks.ErrNotFound) {
		return h, webhookNotFound(id)
	}
	return h, err
}

type webhookInput struct {
	URL         string   `json:"url"`
	Types       []string `json:"types"`
	Projects    []string `json:"projects"`
	ProjectID   string   `json:"project_id"` // shorthand for one project
	Description string   `json:"description"`
}

// refs are the projects the input names.
func (in webhookInput) refs() []string {
	refs := in.Projects
	if in.ProjectID != "" {
		refs = append(refs[:len(refs):len(refs)], in.ProjectID)
	}
	return refs
}

func (g *Gateway) createWebhook(c *gin.Context) (int, any, error) {
	var in webhookInput
	if err := decodeBody(c, g.cfg.MaxBody, &in); err != nil {
		return 0, nil, err
	}
	if strings.TrimSpace(in.URL) == "" {
		return 0, nil, events.Errorf(http.StatusBadRequest, "url is required: where to POST the events, e.g. https://hooks.example.com/mlpanel")
	}
	if err := webhooks.CheckTypes(in.Types); err != nil {
		return 0, nil, events.Errorf(http.StatusBadRequest, "%s", err)
	}
	refs := in.refs() // authorised by the route's rule (hookOwn)
	u := g.webhookCaller(c)
	h := webhooks.Webhook{ID: webhooks.NewID(), Types: in.Types, Projects: []string{}, Description: in.Description, CreatedAt: g.now()}
	if h.Types == nil {
		h.Types = []string{}
	}
	for _, ref := range refs {
		if strings.TrimSpace(ref) == "" {
			return 0, nil, events.Errorf(http.StatusBadRequest, "projects: an empty project reference; give project ids or names")
		}
		p, err := g.projects.Get(c, ref)
		if err != nil {
			return 0, nil, err
		}
		if !contains(h.Projects, p.ID) {
			h.Projects = append(h.Projects, p.ID)
		}
	}
	target, err := g.hooks.guard.CheckURL(c, in.URL)
	if err != nil {
		return 0, nil, events.Errorf(http.StatusBadRequest, "%s", err)
	}
	h.URL = target.String()
	if u != nil {
		h.CreatedBy, h.CreatedByID = u.Name, u.ID
	}
	secret := webhooks.NewSecret()
	h.Sealed = g.hooks.sealer.Seal(h.ID, secret)
	if err := g.hooks.store.Create(c, h); err != nil {
		return 0, nil, err
	}
	if err := g.hooks.dispatch.Subscribe(c, h); err != nil {
		// Nothing half-made: a webhook without its consumer would never deliver.
		if derr := g.hooks.store.Delete(context.WithoutCancel(c), h.ID); derr != nil {
			g.log.Error("removing a webhook whose consumer failed", "webhook", h.ID, "err", derr)
		}
		return 0, nil, err
	}
	h.Secret = secret // shown this once
	return http.StatusCreated, h, nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func (g *Gateway) listWebhooks(c *gin.Context) (int, any, error) {
	lp, err := listParams(c)
	if err != nil {
		return 0, nil, err
	}
	u := g.webhookCaller(c)
	project := ""
	if ref := c.Query("project_id"); ref != "" {
		p, err := g.ownsProject(c, u, ref)
		if err != nil {
			return 0, nil, err
		}
		project = p.ID
	}
	all, err := g.hooks.store.All(c)
	if err != nil {
		return 0, nil, err
	}
	out := []webhooks.Webhook{}
	for _, h := range all {
		if project != "" && !contains(h.Projects, project) {
			continue
		}
		if g.mayManage(c, u, h) {
			out = append(out, h)
		}
	}
	setTotal(c, len(out))
	lo, hi := lp.Window(len(out))
	return http.StatusOK, out[lo:hi], nil
}

func (g *Gateway) getWebhook(c *gin.Context) (int, any, error) {
	h, err := g.pathWebhook(c)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, h, nil
}

func (g *Gateway) deleteWebhook(c *gin.Context) (int, any, error) {
	h, err := g.pathWebhook(c)
	if err != nil {
		return 0, nil, err
	}
	if err := g.hooks.dispatch.Unsubscribe(c, h.ID); err != nil {
		return 0, nil, err
	}
	if err := g.hooks.store.Delete(c, h.ID); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, h, nil
}

func (g *Gateway) listDeliveries(c *gin.Context) (int, any, error) {
	h, err := g.pathWebhook(c)
	if err != nil {
		return 0, nil, err
	}
	lp, err := listParams(c)
	if err != nil {
		return 0, nil, err
	}
	if lp.Sort != "" && lp.Sort != "at" {
		return 0, nil, events.Errorf(http.StatusBadRequest, "_sort=%q: deliveries sort by at only (newest first; _order=ASC for oldest first)", lp.Sort)
	}
	ds, n, err := g.hooks.store.Deliveries(c, h.ID, lp.Start, lp.End, lp.Order == "ASC")
	if err != nil {
		return 0, nil, err
	}
	setTotal(c, int(n))
	return http.StatusOK, ds, nil
}

func (g *Gateway) testWebhook(c *gin.Context) (int, any, error) {
	h, err := g.pathWebhook(c)
	if err != nil {
		return 0, nil, err
	}
	d, err := g.hooks.dispatch.Ping(c, h)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, d, nil
}
