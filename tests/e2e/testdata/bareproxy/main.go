// Command bareproxy is the baseline of BenchmarkProxyOverhead: a bare
// httputil.ReverseProxy in front of one tracking server, with nothing of
// the gateway's in it (no authentication, routing, logging, metrics or
// audit), tuned as the gateway's proxy is (kept-alive connections, the
// X-Forwarded headers, the tracking server's time in Server-Timing). What
// the gateway costs beyond it is what the gateway's own work costs; what
// both cost is the hop through a second process.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	target := flag.String("target", "", "the tracking server's base URL")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		log.Fatalf("-target %q: want the tracking server's URL", *target)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 32
	rp := &httputil.ReverseProxy{
		Transport: timed{t},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = u.Host
			pr.SetXForwarded()
		},
	}
	log.Fatal(http.ListenAndServe(*addr, rp))
}

// timed adds the tracking server's time to the answer, as the gateway does.
type timed struct{ base http.RoundTripper }

func (t timed) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		ms := float64(time.Since(start).Microseconds()) / 1000
		resp.Header.Add("Server-Timing", `tracking;desc="tracking server";dur=`+strconv.FormatFloat(ms, 'f', 3, 64))
	}
	return resp, err
}
