package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
)

// The MLflow proxy lets a remote user set
// MLFLOW_TRACKING_URI=http://<panel>/projects/<name>/mlflow and
// MLFLOW_TRACKING_TOKEN=<token> and use the stock mlflow client, so
// tracking servers need not be reachable from outside at all.

const mlflowRoute = "/projects/:id/mlflow/*path"

// proxyCall is what one proxied MLflow call needs after the handler has
// resolved it, carried in one context value.
type proxyCall struct {
	base, public *url.URL
	path         string // below the project's /mlflow
	prefix       string // the gateway's path for the project's MLflow
}

type proxyCallKey struct{}

// proxyBuffers are the proxy's copy buffers: without a pool every call
// allocates 32 KiB.
var proxyBuffers = &bufferPool{sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ p sync.Pool }

func (bp *bufferPool) Get() []byte  { return *bp.p.Get().(*[]byte) }
func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }

// proxyTransport reaches tracking servers (on Unix sockets when auth is
// on) and keeps enough idle connections per server that concurrent
// clients reuse them instead of dialling per call.
func proxyTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 32
	return sockhttp.Transport(t)
}

// mlflowProxy answers every method on mlflowRoute.
func (g *Gateway) mlflowProxy() gin.HandlerFunc {
	rp := &httputil.ReverseProxy{
		// Tracking servers listen on Unix sockets when auth is on; a
		// request to a server that went to sleep wakes it (wake.go).
		Transport:  serverTiming{wakingTransport{g: g, base: proxyTransport()}},
		BufferPool: proxyBuffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(proxyCallKey{}).(*proxyCall)
			pr.Out.URL.Scheme, pr.Out.URL.Host = t.base.Scheme, t.base.Host
			pr.Out.URL.Path = strings.TrimSuffix(t.base.Path, "/") + t.path
			pr.Out.URL.RawPath = ""
			pr.Out.Host = t.base.Host // MLflow checks the Host header
			if sockhttp.IsTarget(t.base.Host) {
				pr.Out.Host = sockhttp.SocketHost // what the transport would send, without cloning the request
			}
			// The panel's token means nothing to MLflow; don't leak it.
			pr.Out.Header.Del("Authorization")
			mlflowOrigin(pr, t.base, t.public)
			stripSessionCookies(pr.Out.Header)
			pr.SetXForwarded()
		},
		ModifyResponse: func(resp *http.Response) error {
			t := resp.Request.Context().Value(proxyCallKey{}).(*proxyCall)
			return hideRedirect(resp, t.base, t.prefix)
		},
		// Stream both ways: gigabyte artifacts never sit in memory (the
		// copy goes through a 32 KiB buffer). Answers of unknown length
		// and event streams are flushed at every write (ReverseProxy does
		// that on its own); a small answer of known length leaves in one
		// write instead of a write for the headers and one for the body.
		FlushInterval: 0,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client went away
			}
			var fe *foreignRedirect
			if errors.As(err, &fe) {
				writeJSONError(w, http.StatusBadGateway, fe.Error())
				return
			}
			writeJSONError(w, http.StatusBadGateway, "the project's tracking server did not answer: "+err.Error())
		},
	}
	return func(c *gin.Context) {
		p, err := g.projects.Get(c, c.Param("id"))
		if err == nil && p.Status != "running" {
			// The cache may hold a state the API already moved past
			// (the event is on its way): ask again before refusing.
			p, err = g.projects.Fresh(c, c.Param("id"))
		}
		if err != nil {
			writeError(c, err)
			return
		}
		// A search refused for its filter is refused before the wake: a
		// sleeping project is not started only to hear the 400 (a running
		// one's MLflow judges the grammar itself).
		filter, err := checkProxiedFilter(c.Request, c.Param("path"))
		if err == nil && p.Status != "running" && filter != "" && isRunSearch(c.Param("path")) {
			err = g.checkRunGrammar(c.Request.Context(), filter)
		}
		if err != nil {
			writeError(c, err)
			return
		}
		if p, err = g.awake(c.Request.Context(), p); err != nil { // wake.go: a sleeping project wakes
			writeError(c, err)
			return
		}
		defer g.activity.Begin(p.ID)()
		base, err := url.Parse(sockhttp.Target(p.InternalURL))
		if err != nil || base.Host == "" {
			writeError(c, events.Errorf(http.StatusBadGateway, "project %s has no usable tracking server address %q", p.Name, p.InternalURL))
			return
		}
		ctx := context.WithValue(c.Request.Context(), proxyCallKey{}, &proxyCall{
			base: base, public: g.publicURL, path: c.Param("path"),
			prefix: "/projects/" + url.PathEscape(c.Param("id")) + "/mlflow",
		})
		ctx = context.WithValue(ctx, proxyProjectKey{}, p.ID)
		g.serveMLflow(c, rp, c.Request.WithContext(ctx), p.ID, base) // registry_events.go
		// A write's audit entry is durable before its answer leaves.
		g.auditCall(c)
		sendNow(c)
	}
}

// serverTiming tells the caller how long the tracking server took to
// answer, in a Server-Timing entry (browsers' developer tools show it):
// the rest of a proxied call's time is the gateway's own, which a client
// can tell apart from MLflow's time without a second, direct call
// (tests/e2e BenchmarkProxyOverhead measures the proxy's cost that way
// too). The time runs from sending the request to the answer's header,
// a wake after a refused connection included.
type serverTiming struct{ base http.RoundTripper }

func (t serverTiming) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		ms := float64(time.Since(start).Microseconds()) / 1000
		resp.Header.Add("Server-Timing", `tracking;desc="tracking server";dur=`+strconv.FormatFloat(ms, 'f', 3, 64))
	}
	return resp, err
}

// sendNow puts a complete answer of declared length on the wire at once.
// net/http sends the last buffered bytes only when the whole handler
// chain has returned, so without it every proxied call would also wait
// for what the middlewares do on the way out (the access log line and
// its write, metrics, audit): tens of microseconds per call on a small
// machine, for the stock client's hundreds of calls. A write's audit
// entry is the exception: it is recorded before (auditCall). An answer
// without a Content-Length is left alone: flushing it early would make it
// chunked.
func sendNow(c *gin.Context) {
	if c.Writer.Written() && c.Writer.Header().Get("Content-Length") != "" {
		c.Writer.Flush()
	}
}

// mlflowOrigin makes MLflow accept what a browser sends through the
// gateway. MLflow refuses state-changing requests whose Origin is not its
// own host, and the MLflow UI opened through the gateway sends the
// gateway's origin (MLPANEL_PUBLIC_URL, or the host the browser used).
// Such a request is same-origin for the gateway, which has authenticated
// it, so it reaches MLflow with MLflow's own origin; every other origin
// goes on unchanged for MLflow to refuse.
func mlflowOrigin(pr *httputil.ProxyRequest, target, public *url.URL) {
	if pr.In.Header.Get("Origin") != "" && sameOrigin(pr.In, public) {
		host := target.Host
		if sockhttp.IsTarget(host) {
			host = sockhttp.SocketHost // a server on a socket sees Host: localhost
		}
		pr.Out.Header.Set("Origin", target.Scheme+"://"+host)
	}
}

// writeJSONError answers in the API's error shape outside gin.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"code": strconv.Itoa(status), "message": msg})
	_, _ = w.Write(b)
}

// foreignRedirect is a redirect the proxy cannot map into the gateway's
// paths; it is refused rather than passed on.
type foreignRedirect struct{ status int }

func (f *foreignRedirect) Error() string {
	return fmt.Sprintf("the tracking server answered a redirect (HTTP %d) outside the project: call the path without '//' or '..'", f.status)
}

// hideRedirect keeps the tracking server's address from reaching the
// client: a Location into the server's own paths becomes the same place
// under the gateway's path for the project (an absolute path, no host);
// one elsewhere is refused. The redirect's body, which repeats the
// address, is dropped.
func hideRedirect(resp *http.Response, internal *url.URL, gatewayPrefix string) error {
	// A server on a Unix socket sees the Host header the transport sent
	// (sockhttp: localhost), not the socket's placeholder host, and builds
	// absolute redirects from it: that name is the server too.
	server := *internal
	if resp.Request != nil && resp.Request.Host != "" && resp.Request.Host != internal.Host && sockhttp.IsTarget(internal.Host) {
		server.Host = resp.Request.Host
	}
	for _, h := range []string{"Location", "Content-Location"} {
		loc := resp.Header.Get(h)
		if loc == "" {
			continue
		}
		mapped, ok := mapInternalURL(loc, &server, gatewayPrefix)
		if !ok {
			return &foreignRedirect{resp.StatusCode}
		}
		resp.Header.Set(h, mapped)
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Header.Get("Location") != "" {
		resp.Body.Close()
		resp.Body = http.NoBody
		resp.ContentLength = 0
		resp.Header.Del("Content-Length")
		resp.Header.Del("Content-Type")
	}
	return nil
}

// mapInternalURL rewrites a URL of the tracking server (absolute, or a
// path under its prefix) to the gateway's path for it; a relative
// reference without a leading '/' resolves the same under both and is
// kept. Anything else (another host or port, a path outside the server's
// prefix, a scheme-relative "//host") is not mapped.
func mapInternalURL(loc string, internal *url.URL, gatewayPrefix string) (string, bool) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", false
	}
	if u.Scheme == "" && u.Host == "" && u.Opaque == "" && !strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(loc, "//") {
		return loc, true // relative to the current path
	}
	if u.Host != "" && !strings.EqualFold(u.Host, internal.Host) {
		return "", false
	}
	if u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" {
		return "", false
	}
	base := strings.TrimSuffix(internal.Path, "/")
	rest, ok := strings.CutPrefix(u.Path, base)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		return "", false
	}
	out := &url.URL{Path: gatewayPrefix + rest, RawQuery: u.RawQuery, Fragment: u.Fragment}
	s := out.String()
	if strings.HasPrefix(s, "//") {
		return "", false // would name a host
	}
	return s, true
}
