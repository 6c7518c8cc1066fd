// Package sockhttp speaks HTTP to servers on Unix sockets. With auth on,
// tracking servers listen on sockets in a 0700 folder of the data home, so
// only the panel's own processes (the same OS user) can reach them and
// every client goes through the gateway.
//
// A socket server's address is written "http+unix://<socket path, '/'
// escaped as %2F>/<path>", the form Python's requests-unixsocket uses.
// Go's url package refuses an escaped host, so clients turn it into an
// ordinary URL with Target and send it through Transport.
package sockhttp

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Scheme marks an address on a Unix socket.
const Scheme = "http+unix"

// hostSuffix marks a URL host that names a socket (its path in hex); the
// suffix is a reserved name (RFC 2606), so it never reaches DNS.
const hostSuffix = ".sock.invalid"

// URL is the address of path on the server listening on socket.
func URL(socket, path string) string {
	return Scheme + "://" + strings.ReplaceAll(url.PathEscape(socket), "/", "%2F") + path
}

// Socket returns the socket of a URL made by URL, or "" and false.
func Socket(addr string) (string, bool) {
	rest, ok := strings.CutPrefix(addr, Scheme+"://")
	if !ok {
		return "", false
	}
	host, _, _ := strings.Cut(rest, "/")
	socket, err := url.PathUnescape(host)
	if err != nil || socket == "" {
		return "", false
	}
	return socket, true
}

// Target turns an address into a URL for Transport: a socket address
// becomes http://<hex of the socket>.sock.invalid/<path>; any other is
// returned as it is.
func Target(addr string) string {
	socket, ok := Socket(addr)
	if !ok {
		return addr
	}
	rest := strings.TrimPrefix(addr, Scheme+"://")
	_, path, _ := strings.Cut(rest, "/")
	return "http://" + hex.EncodeToString([]byte(socket)) + hostSuffix + "/" + path
}

// IsTarget reports whether host is a Target URL's placeholder host.
func IsTarget(host string) bool { return socketOf(host) != "" }

// socketOf decodes the socket of a Target host, or "".
func socketOf(host string) string {
	h, ok := strings.CutSuffix(host, hostSuffix)
	if !ok || len(h)%2 != 0 {
		return ""
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return ""
	}
	return string(b)
}

// Transport wraps base (nil: a clone of http.DefaultTransport without a
// proxy) so requests to Target URLs are dialled on their socket. MLflow
// checks the Host header against loopback names, so those requests carry
// Host: localhost.
func Transport(base *http.Transport) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
		base.Proxy = nil
	}
	tcp := base.DialContext
	if tcp == nil {
		tcp = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	base = base.Clone()
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err == nil {
			if socket := socketOf(host); socket != "" {
				var d net.Dialer
				conn, err := d.DialContext(ctx, "unix", socket)
				if err != nil {
					return nil, fmt.Errorf("dialling %s: %w", socket, err)
				}
				return conn, nil
			}
		}
		return tcp(ctx, network, addr)
	}
	return hostFix{base}
}

type hostFix struct{ rt http.RoundTripper }

func (h hostFix) RoundTrip(r *http.Request) (*http.Response, error) {
	// A caller that already says Host: localhost (SocketHost) costs no
	// clone of the request, which a proxy pays on every call.
	if r.Host != SocketHost && IsTarget(r.URL.Hostname()) {
		r = r.Clone(r.Context())
		r.Host = SocketHost
	}
	return h.rt.RoundTrip(r)
}

// SocketHost is the Host header requests to socket servers carry: MLflow
// checks it against loopback names.
const SocketHost = "localhost"

// CloseIdleConnections lets http.Client.CloseIdleConnections and owners
// of the transport (the relay, on Close) drop kept-alive connections.
func (h hostFix) CloseIdleConnections() {
	if c, ok := h.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Dial connects to a socket address's server, for probes that only need
// to know whether it listens.
func Dial(ctx context.Context, socket string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", socket)
}
