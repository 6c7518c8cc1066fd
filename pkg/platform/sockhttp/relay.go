package sockhttp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// Relay lets a program that speaks only TCP HTTP read from socket servers:
// `mlflow models serve` fetches its model from the project's tracking
// server with Python's requests, which cannot dial a Unix socket. It
// listens on a loopback port and serves GET and HEAD only, under a random
// token per socket, so an address it hands out opens one server for
// reading and nothing else, and the port alone opens nothing. Tokens
// travel in the child's environment, which other OS users cannot read.
type Relay struct {
	ln     net.Listener
	srv    *http.Server
	rp     *httputil.ReverseProxy
	served chan struct{} // closed when Serve has returned

	mu      sync.Mutex
	sockets map[string]string // token -> socket address (http+unix://...)
	tokens  map[string]string // socket address -> token
}

// StartRelay listens on a free loopback port.
func StartRelay() (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the socket relay: %w", err)
	}
	r := &Relay{ln: ln, sockets: map[string]string{}, tokens: map[string]string{}, served: make(chan struct{})}
	r.rp = &httputil.ReverseProxy{
		Transport: Transport(nil),
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := pr.In.Context().Value(relayTarget{}).(*url.URL)
			pr.Out.URL = u
			pr.Out.Host = u.Host
		},
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve)}
	go func() {
		defer close(r.served)
		_ = r.srv.Serve(ln)
	}()
	return r, nil
}

type relayTarget struct{}

// URL is the relay's address for a socket address (see URL); any other
// address is returned as it is.
func (r *Relay) URL(addr string) (string, error) {
	socket, ok := Socket(addr)
	if !ok {
		return addr, nil
	}
	rest := strings.TrimPrefix(addr, Scheme+"://")
	_, path, _ := strings.Cut(rest, "/")
	base := Scheme + "://" + strings.ReplaceAll(url.PathEscape(socket), "/", "%2F")
	r.mu.Lock()
	defer r.mu.Unlock()
	tok, ok := r.tokens[base]
	if !ok {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("making a relay token: %w", err)
		}
		tok = hex.EncodeToString(b)
		r.tokens[base], r.sockets[tok] = tok, base
	}
	return "http://" + r.ln.Addr().String() + "/" + tok + "/" + path, nil
}

func (r *Relay) serve(w http.ResponseWriter, req *http.Request) {
	tok, rest, _ := strings.Cut(strings.TrimPrefix(req.URL.EscapedPath(), "/"), "/")
	r.mu.Lock()
	base, ok := r.sockets[tok]
	r.mu.Unlock()
	if !ok {
		http.NotFound(w, req)
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "the relay only reads", http.StatusMethodNotAllowed)
		return
	}
	u, err := url.Parse(Target(base + "/" + rest))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	u.RawQuery = req.URL.RawQuery
	ctx := req.Context()
	r.rp.ServeHTTP(w, req.WithContext(contextWith(ctx, u)))
}

// Close stops the relay: its port is closed, requests in flight are cut,
// its serving goroutine has ended and the kept-alive connections to the
// socket servers are closed when it returns. Tokens handed out open
// nothing any more.
func (r *Relay) Close() error {
	err := r.srv.Close()
	<-r.served
	if c, ok := r.rp.Transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("closing the socket relay: %w", err)
	}
	return nil
}

func contextWith(ctx context.Context, u *url.URL) context.Context {
	return context.WithValue(ctx, relayTarget{}, u)
}
