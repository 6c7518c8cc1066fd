// Package gateway is mlpanel's single HTTP entry point: it maps the REST
// API onto the services' NATS endpoints (control plane) and proxies byte
// streams straight to the processes that serve them (data plane).
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/services/gateway/access"
)

const callerKey = "mlpanel.caller"

// Config is the gateway's settings.
type Config struct {
	Addr           string
	MaxBody        int64         // control-plane request bodies
	RequestTimeout time.Duration // one control-plane call
	// SpecCheck validates every request and response against the OpenAPI
	// document and records mismatches (SpecViolations); for tests and
	// staging, as it buffers bodies to check them.
	SpecCheck bool
	// Auth requires a token on every call but health and docs, and checks
	// the caller's role. Off for `make run` on localhost, on for teams.
	Auth       bool
	AdminToken string // the first admin's token; else one is printed once
	// PublicURL is where users reach the gateway (MLPANEL_PUBLIC_URL): the
	// MLflow UI opened there may write through the proxy.
	PublicURL string
	// WakeTimeout bounds how long a request to a sleeping project is held
	// while it wakes: the projects service's start timeout.
	WakeTimeout time.Duration
}

// ConfigFromEnv reads MLPANEL_HTTP_ADDR and friends.
func ConfigFromEnv(r *conf.Reader) Config {
	return Config{
		Addr:           r.String("HTTP_ADDR", "127.0.0.1:8080"),
		MaxBody:        int64(r.Int("MAX_BODY_BYTES", 1<<20)),
		RequestTimeout: r.Duration("REQUEST_TIMEOUT", 60*time.Second),
		SpecCheck:      r.Bool("SPEC_CHECK", false),
		Auth:           r.Bool("AUTH", false),
		AdminToken:     r.String("ADMIN_TOKEN", ""),
		PublicURL:      r.String("PUBLIC_URL", ""),
		WakeTimeout:    r.Duration("START_TIMEOUT", 2*time.Minute),
	}
}

// Gateway holds what the handlers share.
type Gateway struct {
	cfg    Config
	nc     *nats.Conn
	db     *mongo.Database // users, tokens, members and audit: the gateway's own collections
	log    *slog.Logger
	access *access.Store // nil until Serve has prepared it
	// authCache answers the per-call token and role lookups (authcache.go);
	// audit queues audit entries durably (auditqueue.go).
	authCache *accessCache
	audit     *auditQueue
	projects  *projectCache
	owners    *deploymentOwners // which project owns each deployment
	stderr    io.Writer         // where the first admin token is printed
	// publicURL is Config.PublicURL parsed; nil when unset or malformed.
	publicURL *url.URL
	now       func() time.Time
	activity  *activity.Tracker // wake.go: requests per project, for idle clocks
	// deployActivity counts predictions per deployment (wake_deployment.go).
	deployActivity *activity.Tracker
}

// New builds the gateway.
func New(cfg Config, nc *nats.Conn, db *mongo.Database, log *slog.Logger) *Gateway {
	g := &Gateway{cfg: cfg, nc: nc, db: db, log: log.With("service", "gateway"),
		projects: newProjectCache(nc), owners: newDeploymentOwners(nc), stderr: os.Stderr,
		now: func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }}
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err == nil && u.Host != "" {
			g.publicURL = u
		} else {
			g.log.Warn("MLPANEL_PUBLIC_URL is not an absolute URL; the MLflow UI works only at the gateway's own host", "value", cfg.PublicURL)
		}
	}
	g.activity = newActivity(g)
	g.deployActivity = newDeployActivity(g)
	return g
}

// prepare opens the gateway's own store, makes sure a team server has an
// admin, and starts following project events for the cache.
func (g *Gateway) prepare(ctx context.Context) error {
	if g.db == nil {
		return errors.New("the gateway needs MongoDB for users, tokens and audit (MLPANEL_MONGO_URI)")
	}
	st, err := access.NewStore(ctx, g.db)
	if err != nil {
		return err
	}
	g.access = st
	g.authCache = newAccessCache(st, authCacheTTL)
	if g.nc != nil {
		if err := g.authCache.follow(g.nc); err != nil {
			return fmt.Errorf("following access changes: %w", err)
		}
		if g.audit, err = newAuditQueue(ctx, g.nc, st, g.log); err != nil {
			return err
		}
	}
	if err := g.projects.watch(); err != nil {
		return fmt.Errorf("following project events: %w", err)
	}
	if g.cfg.Auth {
		if err := g.bootstrapAdmin(ctx); err != nil {
			return fmt.Errorf("creating the first admin: %w", err)
		}
		g.log.Info("auth is ON: every call but health and docs needs a token")
	} else {
		g.log.Warn("auth is OFF: anyone who reaches the gateway may do anything (set MLPANEL_AUTH=true on a shared server)")
	}
	return nil
}

// Handler is the whole HTTP API.
func (g *Gateway) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(gin.CustomRecovery(func(c *gin.Context, rec any) {
		g.logFor(c).Error("panic in handler", "path", c.Request.URL.Path, "panic", rec)
		writeError(c, fmt.Errorf("unexpected failure: %v", rec))
	}))
	e.Use(g.observe()...)   // observe.go: request IDs, access log, metrics
	e.Use(g.specCheck())    // validate.go: requests and responses against the OpenAPI document
	e.Use(g.auditMutations) // audit.go: every mutating call recorded, refused ones too
	e.Use(g.preflight)      // session.go: CORS preflights need no token
	e.Use(g.authenticate)   // auth.go: who calls, and may they
	e.Use(g.accessChanges)  // authcache.go: drop cached tokens and roles when they change
	e.NoRoute(func(c *gin.Context) {
		writeError(c, events.Errorf(http.StatusNotFound, "no endpoint %s %s: see /openapi.yaml", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, events.Errorf(http.StatusMethodNotAllowed, "%s is not allowed on %s: see /openapi.yaml", c.Request.Method, c.Request.URL.Path))
	})
	for _, rt := range controlRoutes() {
		e.Handle(rt.method, rt.path, g.control(rt))
	}
	for _, mount := range dataPlane {
		mount(g, e)
	}
	g.mountDocs(e) // docs.go: /openapi.yaml, /openapi.json, /docs
	g.mountOps(e)  // observe.go: /healthz, /readyz, /metrics
	g.mountHealthcheck(e)
	g.mountAuth(e) // auth.go: users, tokens, members
	g.mountSignIn(e)
	g.mountAudit(e)
	return e
}

// control answers one REST call with one NATS request.
func (g *Gateway) control(rt route) gin.HandlerFunc {
	return func(c *gin.Context) {
		req, err := buildRequest(c, g.cfg.MaxBody)
		if err != nil {
			writeError(c, err)
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), g.cfg.RequestTimeout)
		defer cancel()
		var reply json.RawMessage
		call := events.Call
		if rt.method == http.MethodGet {
			call = events.CallIdempotent // a read may be sent again
		}
		if err := call(ctx, g.nc, rt.subject, req, &reply); err != nil {
			writeError(c, err)
			return
		}
		if !rt.list {
			c.Data(rt.status, "application/json; charset=utf-8", withOriginalID(rt, reply))
			return
		}
		var page struct {
			Items json.RawMessage `json:"items"`
			Total int             `json:"total"`
		}
		if err := json.Unmarshal(reply, &page); err != nil {
			writeError(c, fmt.Errorf("decoding list from %s: %w", rt.subject, err))
			return
		}
		if len(page.Items) == 0 || string(page.Items) == "null" {
			page.Items = json.RawMessage("[]")
		}
		c.Header("X-Total-Count", fmt.Sprint(page.Total))
		c.Header("Access-Control-Expose-Headers", "X-Total-Count")
		c.Data(rt.status, "application/json; charset=utf-8", page.Items)
	}
}

// Run serves HTTP until ctx ends, then drains for up to 10 seconds.
func (g *Gateway) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s (MLPANEL_HTTP_ADDR): %w", g.cfg.Addr, err)
	}
	return g.Serve(ctx, ln)
}

// Serve serves HTTP on ln until ctx ends.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	if err := g.prepare(ctx); err != nil {
		return err
	}
	defer g.projects.stop()
	defer g.authCache.stop()
	defer func() {
		if g.audit != nil {
			g.audit.stop()
		}
	}()
	go g.activity.Run(ctx)
	go g.deployActivity.Run(ctx)
	// No ReadTimeout or WriteTimeout: they would cut gigabyte artifact
	// uploads and downloads through the data plane. Control-plane calls get
	// a per-request deadline instead (observe.go, deadlines); slow headers
	// and idle keep-alive connections are bounded here for everyone.
	srv := &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	g.log.Info("gateway listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down HTTP: %w", err)
	}
	return nil
}
