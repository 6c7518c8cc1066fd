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
)

// The MLflow proxy lets a remote user set
// MLFLOW_TRACKING_URI=http://<panel>/projects/<name>/mlflow and
// MLFLOW_TRACKING_TOKEN=<token> and use the stock mlflow client, so
// tracking servers need not be reachable from outside at all.
func init() { dataPlane = append(dataPlane, mountMLflowProxy) }

const mlflowRoute = "/projects/:id/mlflow/*path"

type (
	proxyTarget    struct{ base, public *url.URL }
	proxyTargetKey struct{}
	proxyPathKey   struct{}
)

func mountMLflowProxy(g *Gateway, e *gin.Engine) {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(proxyTargetKey{}).(proxyTarget)
			suffix := pr.In.Context().Value(proxyPathKey{}).(string)
			pr.Out.URL.Scheme, pr.Out.URL.Host = t.base.Scheme, t.base.Host
			pr.Out.URL.Path = strings.TrimSuffix(t.base.Path, "/") + suffix
			pr.Out.URL.RawPath = ""
			pr.Out.Host = t.base.Host // MLflow checks the Host header
			// The panel's token means nothing to MLflow; don't leak it.
			pr.Out.Header.Del("Authorization")
			sameOrigin(pr, t.base, t.public)
			pr.SetXForwarded()
		},
		Transport: wakingTransport{g: g, base: http.DefaultTransport}, // wake.go
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
		if err == nil && p.Status != "running" {
			// The cache may hold a state the API already moved past
			// (the event is on its way): ask again before refusing.
			p, err = g.projects.fresh(c, c.Param("id"))
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
		base, err := url.Parse(p.InternalURL)
		if err != nil || base.Host == "" {
			writeError(c, events.Errorf(http.StatusBadGateway, "project %s has no usable tracking server address %q", p.Name, p.InternalURL))
			return
		}
		ctx := context.WithValue(c.Request.Context(), proxyTargetKey{}, proxyTarget{base: base, public: g.publicURL})
		ctx = context.WithValue(ctx, proxyPathKey{}, c.Param("path"))
		ctx = context.WithValue(ctx, proxyProjectKey{}, p.ID)
		rp.ServeHTTP(c.Writer, c.Request.WithContext(ctx))
	}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		e.Handle(m, mlflowRoute, h)
	}
}

// sameOrigin makes MLflow accept what a browser sends through the
// gateway. MLflow refuses state-changing requests whose Origin is not its
// own host, and the MLflow UI opened through the gateway sends the
// gateway's origin (MLPANEL_PUBLIC_URL, or the host the browser used).
// Such a request is same-origin for the gateway, which has authenticated
// it, so it reaches MLflow with MLflow's own origin; every other origin
// goes on unchanged for MLflow to refuse.
func sameOrigin(pr *httputil.ProxyRequest, target, public *url.URL) {
	origin := pr.In.Header.Get("Origin")
	if origin == "" {
		return
	}
	o, err := url.Parse(origin)
	if err != nil || o.Host == "" {
		return
	}
	ours := strings.EqualFold(o.Host, pr.In.Host)
	if public != nil && public.Host != "" {
		ours = ours || (strings.EqualFold(o.Scheme, public.Scheme) && strings.EqualFold(o.Host, public.Host))
	}
	if ours {
		pr.Out.Header.Set("Origin", target.Scheme+"://"+target.Host)
	}
}

// writeJSONError answers in the API's error shape outside gin.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"code": strconv.Itoa(status), "message": msg})
	_, _ = w.Write(b)
}
