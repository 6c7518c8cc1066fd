package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
)

// The MLflow proxy lets a remote user set
// MLFLOW_TRACKING_URI=http://<panel>/projects/<name>/mlflow and
// MLFLOW_TRACKING_TOKEN=<token> and use the stock mlflow client, so
// tracking servers need not be reachable from outside at all.
func init() { dataPlane = append(dataPlane, mountMLflowProxy) }

const mlflowRoute = "/projects/:id/mlflow/*path"

type (
	proxyTarget    struct{ base *url.URL }
	proxyTargetKey struct{}
	proxyPathKey   struct{}
)

func mountMLflowProxy(g *Gateway, e *gin.Engine) {
	rp := &httputil.ReverseProxy{
		// Tracking servers listen on Unix sockets when auth is on.
		Transport: sockhttp.Transport(nil),
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(proxyTargetKey{}).(proxyTarget)
			suffix := pr.In.Context().Value(proxyPathKey{}).(string)
			pr.Out.URL.Scheme, pr.Out.URL.Host = t.base.Scheme, t.base.Host
			pr.Out.URL.Path = strings.TrimSuffix(t.base.Path, "/") + suffix
			pr.Out.URL.RawPath = ""
			pr.Out.Host = t.base.Host // MLflow checks the Host header
			// The panel's token means nothing to MLflow; don't leak it.
			pr.Out.Header.Del("Authorization")
			pr.SetXForwarded()
		},
		// Stream both ways: gigabyte artifacts never sit in memory.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client went away
			}
			writeJSONError(w, http.StatusBadGateway, "the project's tracking server did not answer: "+err.Error())
		},
	}
	h := func(c *gin.Context) {
		p, err := g.projects.get(c, c.Param("id"))
		if err != nil {
			writeError(c, err)
			return
		}
		if p.Status != "running" {
			writeError(c, events.Errorf(http.StatusConflict,
				"project %s is %s: start it with PUT /projects/%s/run", p.Name, p.Status, p.ID))
			return
		}
		base, err := url.Parse(sockhttp.Target(p.InternalURL))
		if err != nil || base.Host == "" {
			writeError(c, events.Errorf(http.StatusBadGateway, "project %s has no usable tracking server address %q", p.Name, p.InternalURL))
			return
		}
		if err := checkProxiedFilter(c.Request, c.Param("path")); err != nil {
			writeError(c, err)
			return
		}
		ctx := context.WithValue(c.Request.Context(), proxyTargetKey{}, proxyTarget{base: base})
		ctx = context.WithValue(ctx, proxyPathKey{}, c.Param("path"))
		rp.ServeHTTP(c.Writer, c.Request.WithContext(ctx))
	}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		e.Handle(m, mlflowRoute, h)
	}
}

// writeJSONError answers in the API's error shape outside gin.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"code": strconv.Itoa(status), "message": msg})
	_, _ = w.Write(b)
}
