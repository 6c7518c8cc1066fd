package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// RequestIDHeader carries a request's ID in both directions.
const RequestIDHeader = "X-Request-ID"

const (
	requestIDKey = "mlpanel.request_id"
	loggerKey    = "mlpanel.logger"
)

// opsState is what observe.go and validate.go keep per Gateway: one
// metrics registry and one list of spec violations, built once in New
// even though Handler() may be called more than once (Serve calls it,
// tests call it).
type opsState struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight prometheus.Gauge
	spec     *specRecorder
}

func newOpsState() *opsState {
	s := &opsState{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlpanel_http_requests_total",
			Help: "HTTP requests the gateway answered, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mlpanel_http_request_duration_seconds",
			Help: "Time from receiving a request to the handler's return, by route pattern and method. Streams count until their last byte.",
			// From a cached control-plane answer to a multi-minute stream.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800},
		}, []string{"route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mlpanel_http_requests_in_flight",
			Help: "HTTP requests being served now.",
		}),
		spec: &specRecorder{},
	}
	s.reg.MustRegister(s.requests, s.latency, s.inFlight,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s
}

// Registry is the gateway's Prometheus registry, served at /metrics; other
// gateway code may register its own collectors on it.
func (g *Gateway) Registry() *prometheus.Registry { return g.ops.reg }

// observe returns the middleware that identifies and measures requests:
// request ID and request-scoped logger first (so everything after can log
// with it), then deadlines, then the access log and metrics around the rest.
func (g *Gateway) observe() []gin.HandlerFunc {
	s := g.ops
	return []gin.HandlerFunc{g.identify, func(c *gin.Context) { g.measure(c, s) }, g.limits}
}

// identify honours a caller's X-Request-ID (so a client or proxy in front
// can follow one call through the logs) or makes one, and hands it on in
// the response header, the gin context and the request's context.
func (g *Gateway) identify(c *gin.Context) {
	id := c.GetHeader(RequestIDHeader)
	if !validRequestID(id) {
		id = newRequestID()
	}
	// The request's logger is made when something logs (logFor): most
	// requests log one access line, which names the id itself.
	c.Set(requestIDKey, id)
	c.Header(RequestIDHeader, id)
	// Proxied calls (MLflow, model servers) carry it upstream too, and
	// control-plane calls in a NATS header (pkg/events), so the services'
	// log lines for this request carry it as well.
	c.Request.Header.Set(RequestIDHeader, id)
	c.Request = c.Request.WithContext(events.WithRequestID(c.Request.Context(), id))
	c.Next()
}

// validRequestID accepts what a proxy or client would reasonably send and
// refuses what could forge log lines or bloat every record.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// logFor is the logger for everything done on behalf of c: every line it
// writes carries the request ID. Handlers should log with it, not g.log.
func (g *Gateway) logFor(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(loggerKey); ok {
		if lg, ok := l.(*slog.Logger); ok {
			return lg
		}
	}
	id := c.GetString(requestIDKey)
	if id == "" {
		return g.log
	}
	lg := g.log.With("request_id", id)
	c.Set(loggerKey, lg)
	return lg
}

// streamRoute reports whether the route c matched carries byte streams
// (the data plane, routes.go): their bodies may be gigabytes and take as
// long as they take, so they get no overall deadline and no body
// validation.
func (g *Gateway) streamRoute(c *gin.Context) bool {
	r, ok := g.table.of(c)
	return ok && r.stream
}

// Timeouts of the HTTP server. The server itself has no ReadTimeout and no
// WriteTimeout, because those would cut multi-gigabyte uploads and
// downloads through the data plane; control-plane calls instead get a
// per-request deadline (deadlines), and idle keep-alive connections and
// slow headers are bounded for everyone.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// bodyGrace is how long a control-plane request may take to send its
// (small) body and receive its answer on top of the call itself (a
// variable so tests need not wait half a minute).
var bodyGrace = 30 * time.Second

// limits bounds a control-plane request's body and its whole life on the
// connection, so a client that sends too much, trickles its body or never
// reads the answer cannot hold memory, a connection and a goroutine. The
// body limit covers every handler, not just those that remember to apply
// one. Streams are exempt (see Serve); their handlers bound what they must.
func (g *Gateway) limits(c *gin.Context) {
	if g.streamRoute(c) {
		c.Next()
		return
	}
	if max := g.cfg.MaxBody; max > 0 && c.Request.Body != nil && c.Request.Body != http.NoBody {
		if c.Request.ContentLength > max {
			writeError(c, events.Errorf(http.StatusRequestEntityTooLarge, "request body of %d bytes is larger than %d (MLPANEL_MAX_BODY_BYTES): send less", c.Request.ContentLength, max))
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, max)
	}
	d := g.cfg.RequestTimeout
	if d <= 0 {
		d = 60 * time.Second
	}
	// The read deadline must outlast the handler: net/http's background
	// read after the body treats an expired deadline as a gone client and
	// cancels the request's context.
	at := time.Now().Add(d + bodyGrace)
	rc := http.NewResponseController(c.Writer)
	// Recorders in tests and HTTP/2 may not support deadlines; the call is
	// then simply not bounded here, as before.
	if err := rc.SetReadDeadline(at); err != nil && !errors.Is(err, http.ErrNotSupported) {
		g.logFor(c).Debug("setting read deadline", "err", err)
	}
	if err := rc.SetWriteDeadline(at); err != nil && !errors.Is(err, http.ErrNotSupported) {
		g.logFor(c).Debug("setting write deadline", "err", err)
	}
	// Both deadlines end with this request: net/http resets them before
	// the next one on a keep-alive connection (TestDeadlineDoesNotLeak...).
	c.Next()
}

// measure writes the access log line and the metrics of one request.
func (g *Gateway) measure(c *gin.Context, s *opsState) {
	start := time.Now()
	s.inFlight.Inc()
	defer s.inFlight.Dec()
	c.Next()

	elapsed := time.Since(start)
	status := answeredStatus(c)
	// The route pattern, not the path, keeps label cardinality bounded.
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	s.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
	s.latency.WithLabelValues(route, c.Request.Method).Observe(elapsed.Seconds())

	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case opsRoute(route):
		// Probes and scrapes every few seconds would drown the log.
		level = slog.LevelDebug
	}
	ctx := c.Request.Context()
	if !g.log.Enabled(ctx, level) {
		return // nothing formatted for a line that is dropped
	}
	attrs := []slog.Attr{
		slog.String("request_id", c.GetString(requestIDKey)),
		slog.String("method", c.Request.Method),
		slog.String("path", c.Request.URL.Path),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int("bytes", max(c.Writer.Size(), 0)),
		slog.Duration("duration", elapsed),
		slog.String("remote", c.ClientIP()),
	}
	if caller := c.GetString(callerKey); caller != "" {
		attrs = append(attrs, slog.String("caller", caller))
	}
	if len(c.Errors) > 0 {
		attrs = append(attrs, slog.String("errors", c.Errors.String()))
	}
	// g.log, not logFor: the line names its request id itself, without a
	// logger made for it.
	g.log.LogAttrs(ctx, level, "http request", attrs...)
}

// statusClientClosed is nginx's 499: the client went away before it was
// answered.
const statusClientClosed = 499

// answeredStatus is the status to log, meter and audit for c. A client
// that gave up before its answer (its connection closed, so the request's
// context was cancelled) is a 499 when nothing was written yet or what was
// written is the failure its leaving caused: not a 500 of the gateway.
// Our own deadlines end contexts with DeadlineExceeded, not Canceled, so
// a slow service still shows as the 504 it is.
func answeredStatus(c *gin.Context) int {
	status := c.Writer.Status()
	if errors.Is(c.Request.Context().Err(), context.Canceled) && (!c.Writer.Written() || status >= 500) {
		return statusClientClosed
	}
	return status
}

func opsRoute(route string) bool {
	return route == "/healthz" || route == "/readyz" || route == "/metrics"
}

// readyTimeout bounds each readiness check so a hung dependency makes
// /readyz answer 503 quickly instead of hanging the prober.
const readyTimeout = 2 * time.Second

// healthz is liveness: the process serves HTTP. Dependencies do not
// matter here, or an orchestrator would restart the gateway for a
// database outage.
func (g *Gateway) healthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

// metrics serves the gateway's Prometheus registry.
func (g *Gateway) metrics() gin.HandlerFunc {
	return gin.WrapH(promhttp.HandlerFor(g.ops.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}))
}

// ready answers 200 when NATS is connected and MongoDB answers a ping, and
// 503 naming each one that is not, so the gateway is taken out of a load
// balancer while it could not serve.
func (g *Gateway) ready(c *gin.Context) {
	checks := map[string]string{}
	failed := []string{}
	if err := g.natsReady(); err != nil {
		checks["nats"] = err.Error()
		failed = append(failed, "nats: "+err.Error())
	} else {
		checks["nats"] = "ok"
	}
	if err := g.mongoReady(c.Request.Context()); err != nil {
		checks["mongodb"] = err.Error()
		failed = append(failed, "mongodb: "+err.Error())
	} else {
		checks["mongodb"] = "ok"
	}
	if len(failed) > 0 {
		g.logFor(c).Warn("not ready", "checks", checks)
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{
			"code":    strconv.Itoa(http.StatusServiceUnavailable),
			"message": "not ready: " + strings.Join(failed, "; "),
			"checks":  checks,
		})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": checks})
}

func (g *Gateway) natsReady() error {
	if g.nc == nil {
		return errors.New("no connection configured")
	}
	if !g.nc.IsConnected() {
		return fmt.Errorf("connection is %s", g.nc.Status())
	}
	return nil
}

func (g *Gateway) mongoReady(ctx context.Context) error {
	if g.db == nil {
		return errors.New("no database configured")
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := g.db.Client().Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}
