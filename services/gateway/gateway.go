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
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	deployer "github.com/mlpanel/mlpanel/services/deployer/client"
	"github.com/mlpanel/mlpanel/services/gateway/access"
	projects "github.com/mlpanel/mlpanel/services/projects/client"
)

const callerKey = "mlpanel.caller"

// Config is the gateway's settings: each tagged field is one MLPANEL_*
// variable with its default (pkg/platform/conf).
type Config struct {
	// Addr is where the REST API listens (host:port).
	Addr string `env:"MLPANEL_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	// MaxBody bounds control-plane request bodies, in bytes.
	MaxBody int64 `env:"MLPANEL_MAX_BODY_BYTES" envDefault:"1048576"`
	// PredictMaxBytes bounds one predict request body, in bytes (413 above).
	PredictMaxBytes int64 `env:"MLPANEL_PREDICT_MAX_BYTES" envDefault:"33554432"`
	// RequestTimeout is the deadline of one control-plane call.
	RequestTimeout time.Duration `env:"MLPANEL_REQUEST_TIMEOUT" envDefault:"60s"`
	// SpecCheck validates every request and response against the OpenAPI
	// document and records mismatches (SpecViolations); for tests and
	// staging, as it buffers bodies to check them.
	SpecCheck bool `env:"MLPANEL_SPEC_CHECK" envDefault:"false"`
	// Auth requires a token on every call but health and docs, and checks
	// the caller's role. Off for `make run` on localhost, on for teams.
	Auth bool `env:"MLPANEL_AUTH" envDefault:"false"`
	// AdminToken is the first admin's token; else one is printed once.
	AdminToken string `env:"MLPANEL_ADMIN_TOKEN"`
	// PublicURL is where users reach the gateway: the MLflow UI opened
	// there may write through the proxy.
	PublicURL string `env:"MLPANEL_PUBLIC_URL"`
	// WakeTimeout bounds how long a request to a sleeping project is held
	// while it wakes: the projects service's start timeout.
	WakeTimeout time.Duration `env:"MLPANEL_START_TIMEOUT" envDefault:"2m"`
	// AuditJournal is a folder where each audited call's entry is appended
	// before the call is answered, and moved to the audit queue after
	// (auditjournal.go). Empty: the queue acknowledges each entry before
	// the answer, a NATS round trip per write. The all-in-one panel uses
	// <MLPANEL_HOME>/audit-journal.
	AuditJournal string `env:"MLPANEL_AUDIT_JOURNAL"`
	// DeployStartTimeout bounds how long a prediction to a sleeping
	// deployment is held while it wakes: the deployer's start timeout.
	DeployStartTimeout time.Duration `env:"MLPANEL_DEPLOY_START_TIMEOUT" envDefault:"3m"`
	// Webhooks are the signed webhooks' settings (routes_webhooks.go).
	Webhooks WebhooksConfig
}

// Settings are the settings structs the gateway command loads: its -h
// lists them and the documentation checks (deployments) read them.
var Settings = []any{boot.Config{}, boot.MongoConfig{}, Config{}}

// ConfigFromEnv loads the gateway's settings.
func ConfigFromEnv() (Config, error) {
	var c Config
	if err := conf.Load(&c); err != nil {
		return c, err
	}
	if c.MaxBody <= 0 || c.PredictMaxBytes <= 0 {
		return c, fmt.Errorf("MLPANEL_MAX_BODY_BYTES=%d, MLPANEL_PREDICT_MAX_BYTES=%d: want positive sizes in bytes", c.MaxBody, c.PredictMaxBytes)
	}
	if err := c.Webhooks.check(); err != nil {
		return c, err
	}
	return c, nil
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
	journal   *auditJournal // nil without Config.AuditJournal
	// projectsAPI calls the projects service; projects resolves projects
	// from memory, following their events, for every call's
	// authorisation and the proxies; owners finds a deployment's project
	// through it.
	projectsAPI projects.Client
	projects    *projects.Resolver
	owners      *deploymentOwners
	stderr      io.Writer // where the first admin token is printed
	// publicURL is Config.PublicURL parsed; nil when unset or malformed.
	publicURL *url.URL
	now       func() time.Time
	activity  *activity.Tracker // wake.go: requests per project, for idle clocks
	// table is the API the handler serves (routes.go), indexed for the
	// middleware that needs a route's access rule or stream flag.
	table routeTable
	ops   *opsState // observe.go: metrics registry and spec violations
	// pub publishes registry events of writes through the MLflow proxy
	// (registry_events.go); made on first use.
	pubOnce sync.Once
	pub     *events.Publisher
	hooks   *webhookAPI // routes_webhooks.go; nil until Serve started it
	// deployActivity counts predictions per deployment (wake_deployment.go).
	deployActivity *activity.Tracker
}

// New builds the gateway.
func New(cfg Config, nc *nats.Conn, db *mongo.Database, log *slog.Logger) *Gateway {
	g := &Gateway{cfg: cfg, nc: nc, db: db, log: log.With("service", "gateway"),
		projectsAPI: projects.New(nc), stderr: os.Stderr,
		now: func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }}
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err == nil && u.Host != "" {
			g.publicURL = u
		} else {
			g.log.Warn("MLPANEL_PUBLIC_URL is not an absolute URL; the MLflow UI works only at the gateway's own host", "value", cfg.PublicURL)
		}
	}
	g.projects = projects.NewResolver(g.projectsAPI, projects.DefaultTTL)
	g.owners = newDeploymentOwners(deployer.New(nc), g.projects)
	g.activity = activity.New(g.projectsAPI.Activity, g.log) // wake.go
	g.deployActivity = newDeployActivity(g)
	g.ops = newOpsState()
	_ = g.ops.reg.Register(projectStatsCollector{g}) // stats.go
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
	if g.cfg.AuditJournal != "" {
		if g.journal, err = openAuditJournal(ctx, g.cfg.AuditJournal, g.recordAudit, g.log); err != nil {
			return err
		}
	}
	if err := g.projects.Watch(); err != nil {
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

// Handler is the whole HTTP API: the rows of routes.go.
func (g *Gateway) Handler() http.Handler { return g.handler(g.routes()) }

// handler serves the rows rs behind the gateway's middleware.
func (g *Gateway) handler(rs []endpoint) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	g.table = newRouteTable(rs)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	// A gin.Context used as a context is the request's: calls made with
	// it carry the request id (and end when the client goes away).
	e.ContextWithFallback = true
	e.Use(gin.CustomRecovery(func(c *gin.Context, rec any) {
		g.logFor(c).Error("panic in handler", "path", c.Request.URL.Path, "panic", rec)
		writeError(c, fmt.Errorf("unexpected failure: %v", rec))
	}))
	e.Use(g.observe()...)   // observe.go: request IDs, access log, metrics
	e.Use(g.specCheck())    // validate.go: requests and responses against the OpenAPI document
	e.Use(g.auditMutations) // audit.go: every mutating call recorded, refused ones too
	e.Use(g.preflight)      // session.go: CORS preflights need no token
	e.Use(g.authenticate)   // authn.go: who calls; authz.go: may they
	e.Use(g.accessChanges)  // authcache.go: drop cached tokens and roles when they change
	e.NoRoute(func(c *gin.Context) {
		writeError(c, events.Errorf(http.StatusNotFound, "no endpoint %s %s: see /openapi.yaml", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, events.Errorf(http.StatusMethodNotAllowed, "%s is not allowed on %s: see /openapi.yaml", c.Request.Method, c.Request.URL.Path))
	})
	for _, r := range rs {
		e.Handle(r.method, r.path, r.handler)
	}
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
	if g.nc != nil {
		if err := g.startWebhooks(ctx, ln.Addr().String()); err != nil {
			return err
		}
	}
	defer g.projects.Stop()
	defer g.authCache.stop()
	defer func() {
		if g.journal != nil {
			jctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			g.journal.close(jctx)
			cancel()
		}
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
