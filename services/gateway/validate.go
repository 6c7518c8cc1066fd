package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/gin-gonic/gin"
)

// loadSpec parses and validates the embedded OpenAPI document once; the
// docs, the spec check and the tests all share the result.
var loadSpec = sync.OnceValues(func() (*openapi3.T, error) {
	raw, err := specFS.ReadFile("openapi.yaml")
	if err != nil {
		return nil, fmt.Errorf("reading the embedded openapi.yaml: %w", err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
})

// Limits of what the spec check keeps in memory per request. Larger
// bodies are passed through unchecked rather than buffered.
const (
	maxCheckedResponse = 8 << 20
	maxViolations      = 1000
	maxViolationText   = 600
)

// specRecorder collects violations; it is bounded so a long soak with
// the check on cannot grow without end.
type specRecorder struct {
	mu      sync.Mutex
	list    []string
	dropped int
}

func (r *specRecorder) add(v string) {
	if len(v) > maxViolationText {
		v = v[:maxViolationText] + "…"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.list) >= maxViolations {
		r.dropped++
		return
	}
	r.list = append(r.list, v)
}

func (r *specRecorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]string(nil), r.list...)
	if r.dropped > 0 {
		out = append(out, fmt.Sprintf("… and %d more", r.dropped))
	}
	return out
}

// SpecViolations lists the requests and responses that did not match the
// document since the gateway started (only with spec checking on).
func (g *Gateway) SpecViolations() []string { return g.ops.spec.snapshot() }

// specSkipped are routes outside the API proper: the Swagger UI's own
// files and the Prometheus exposition format.
func specSkipped(pattern string) bool {
	return pattern == "/metrics" || pattern == "/docs" || strings.HasPrefix(pattern, "/docs/")
}

// openAPIPath turns a gin route pattern into the document's path template:
// :id and *key both become {id} and {key}.
func openAPIPath(pattern string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
			segs[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(segs, "/")
}

// specCheck validates traffic against the OpenAPI document when enabled.
//
// It finds the operation from gin's own match (the route pattern) rather
// than a second router, so what is checked is exactly what gin served.
// Rules:
//   - a route the document lacks is a violation on every call;
//   - a request that does not match the document is a violation only when
//     the gateway accepted it (status below 400): refusing bad input with a
//     documented error is the behaviour the document describes;
//   - every response must match, status, headers and (for the control
//     plane) body; data-plane streams are checked for status and headers
//     only and never buffered.
func (g *Gateway) specCheck() gin.HandlerFunc {
	if !g.cfg.SpecCheck {
		return func(c *gin.Context) { c.Next() }
	}
	rec := g.ops.spec
	doc, err := loadSpec()
	if err != nil {
		// Every call would be unchecked: say so where the harness looks.
		rec.add(err.Error())
		return func(c *gin.Context) { c.Next() }
	}
	g.log.Info("spec check is ON: every request and response is checked against the OpenAPI document (MLPANEL_SPEC_CHECK)")
	return func(c *gin.Context) {
		pattern := c.FullPath()
		if pattern == "" || specSkipped(pattern) {
			// No route: gin's 404/405 answers for unknown paths.
			c.Next()
			return
		}
		method := c.Request.Method
		where := fmt.Sprintf("%s %s (route %s)", method, c.Request.URL.Path, pattern)
		path := openAPIPath(pattern)
		item := doc.Paths.Value(path)
		var op *openapi3.Operation
		if item != nil {
			op = item.GetOperation(method)
		}
		if op == nil {
			c.Next()
			rec.add(fmt.Sprintf("%s -> %d: the document has no operation %s %s", where, c.Writer.Status(), method, path))
			return
		}
		stream := g.streamRoute(c)
		params := map[string]string{}
		for _, p := range c.Params {
			// A catch-all's value starts with the slash before it; at the
			// root (/projects/x/mlflow/) that slash is all there is, and
			// the template's {path} is still matched.
			if v := strings.TrimPrefix(p.Value, "/"); v != "" {
				params[p.Key] = v
			} else {
				params[p.Key] = p.Value
			}
		}
		opts := &openapi3filter.Options{
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
			IncludeResponseStatus: true,
			MultiError:            true,
			ExcludeRequestBody:    stream,
			ExcludeResponseBody:   stream,
			// The gateway's handlers apply their own defaults; the check
			// must not alter the request they see.
			SkipSettingDefaults: true,
		}
		checked, err := g.requestForCheck(c, stream)
		if err != nil {
			opts.ExcludeRequestBody = true
		}
		in := &openapi3filter.RequestValidationInput{
			Request:    checked,
			PathParams: params,
			Route:      &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op},
			Options:    opts,
		}
		reqErr := openapi3filter.ValidateRequest(c.Request.Context(), in)

		tee := &teeWriter{ResponseWriter: c.Writer, capture: !stream}
		c.Writer = tee
		c.Next()
		c.Writer = tee.ResponseWriter

		status := c.Writer.Status()
		if reqErr != nil && status < 400 {
			rec.add(fmt.Sprintf("%s -> %d: request accepted although it does not match the document: %s", where, status, oneLine(reqErr)))
		}
		if reqErr != nil && status >= 400 {
			g.logFor(c).Debug("request refused; it did not match the document either", "err", oneLine(reqErr))
		}
		ropts := *opts
		if tee.overflow {
			ropts.ExcludeResponseBody = true
		}
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in,
			Status:                 status,
			Header:                 c.Writer.Header(),
			Options:                &ropts,
		}
		out.SetBodyBytes(tee.buf.Bytes())
		// A fresh context: the request's may be cancelled by now (the
		// client went away), which must not hide a mismatch.
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			v := fmt.Sprintf("%s -> %d: response does not match the document: %s", where, status, oneLine(err))
			g.logFor(c).Warn("spec violation", "violation", v)
			rec.add(v)
		}
	}
}

// requestForCheck returns a copy of the request to validate. Control-plane
// bodies are small (MaxBody) and read once here, then replayed to the
// handler unchanged; a body over the limit is left for the handler to
// refuse with 413 and not checked.
func (g *Gateway) requestForCheck(c *gin.Context, stream bool) (*http.Request, error) {
	r := c.Request.Clone(c.Request.Context())
	if stream || c.Request.Body == nil || c.Request.Body == http.NoBody {
		r.Body = http.NoBody
		return r, nil
	}
	limit := g.cfg.MaxBody
	if limit <= 0 {
		limit = 1 << 20
	}
	buf, err := io.ReadAll(io.LimitReader(c.Request.Body, limit+1))
	// The handler reads what was taken here, then the rest, as if untouched.
	c.Request.Body = readCloser{io.MultiReader(bytes.NewReader(buf), c.Request.Body), c.Request.Body}
	if err != nil {
		return r, fmt.Errorf("reading the request body to check it: %w", err)
	}
	if int64(len(buf)) > limit {
		return r, fmt.Errorf("request body over %d bytes", limit)
	}
	// request.go takes a body that opens with '{' as JSON whatever the
	// header says (curl -d sends JSON as a form), as the document's
	// conventions state; check it as JSON too. Multipart is parsed as such.
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "multipart/form-data" && ct != "application/json" {
		if t := bytes.TrimSpace(buf); len(t) > 0 && t[0] == '{' {
			r.Header = r.Header.Clone()
			r.Header.Set("Content-Type", "application/json")
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = int64(len(buf))
	return r, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// teeWriter keeps a copy of a control-plane response body (up to
// maxCheckedResponse) for validation while passing every byte on.
type teeWriter struct {
	gin.ResponseWriter
	capture  bool
	overflow bool
	buf      bytes.Buffer
}

func (w *teeWriter) keep(p []byte) {
	if !w.capture || w.overflow {
		return
	}
	if w.buf.Len()+len(p) > maxCheckedResponse {
		w.overflow = true
		w.buf.Reset()
		return
	}
	w.buf.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (flushes and
// deadlines of streaming handlers).
func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *teeWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.keep(p[:n])
	return n, err
}

func (w *teeWriter) WriteString(s string) (int, error) {
	n, err := w.ResponseWriter.WriteString(s)
	w.keep([]byte(s[:n]))
	return n, err
}

// oneLine flattens kin-openapi's multi-line errors for one log line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
