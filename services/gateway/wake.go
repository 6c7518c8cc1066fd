package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mlpanel/mlpanel/pkg/events"

	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
)

// Sleeping projects: the gateway is the address of every project, so it
// keeps their idle clocks (activity, reported in batches) and wakes a
// sleeping or starting project by holding the request until its server
// answers, so an MLflow client sees no error.

type proxyProjectKey struct{}

// awake returns p once its server runs: at once if it runs, after a wake
// if it sleeps or starts, else the answer that says how to start it.
func (g *Gateway) awake(ctx context.Context, p projectInfo) (projectInfo, error) {
	switch p.Status {
	case "running":
		return p, nil
	case "sleeping", "starting":
		return g.wake(ctx, p.ID)
	}
	return p, events.Errorf(http.StatusConflict, "project %s is %s: start it with PUT /projects/%s/run", p.Name, p.Status, p.ID)
}

// wake asks the projects service to wake project id and waits for it,
// bounded by the start timeout; a server that fails to start is a 503
// with its log tail.
func (g *Gateway) wake(ctx context.Context, id string) (projectInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.WakeTimeout+5*time.Second)
	defer cancel()
	return g.projectsAPI.Wake(ctx, id)
}

// wakingTransport sends a proxied request again after waking the project
// when its server is gone before the request reached it (it went to
// sleep between the lookup and the call): a refused connection means no
// byte of the request was sent, so sending it again is safe.
type wakingTransport struct {
	g    *Gateway
	base http.RoundTripper
}

func (t wakingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	id, _ := req.Context().Value(proxyProjectKey{}).(string)
	var body *heldBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &heldBody{rc: req.Body}
		req.Body = body
	}
	resp, err := t.base.RoundTrip(req)
	if err == nil || id == "" || !refused(err) || (body != nil && body.started()) {
		return resp, err
	}
	info, werr := t.g.wake(req.Context(), id)
	if werr != nil {
		return nil, errors.Join(err, werr)
	}
	base, perr := url.Parse(sockhttp.Target(info.InternalURL))
	if perr != nil || base.Host == "" {
		return nil, err
	}
	again := req.Clone(req.Context())
	again.URL.Scheme, again.URL.Host, again.Host = base.Scheme, base.Host, base.Host
	if body != nil {
		again.Body = body
	}
	return t.base.RoundTrip(again)
}

// refused is a failure to connect, before anything was sent.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// heldBody lets a request body be sent again after a failed connect: the
// transport closes the body on error, so Close only counts once reading
// has begun, and started says whether any byte was taken.
type heldBody struct {
	rc   io.ReadCloser
	mu   sync.Mutex
	read bool
}

func (b *heldBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	b.read = true
	b.mu.Unlock()
	return b.rc.Read(p)
}

func (b *heldBody) Close() error {
	if b.started() {
		return b.rc.Close()
	}
	return nil // the server closes the incoming body when the handler ends
}

func (b *heldBody) started() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read
}
