package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/sockhttp"
	tracking "github.com/mlpanel/mlpanel/services/tracking/client"
)

// Artifact downloads are byte streams: the gateway asks the tracking
// service over NATS where the file is (which also checks the project, the
// run and the path), then streams it straight from the tracking server.

// artifactClient fetches artifact bytes. No overall timeout: a large file
// may take long; the client's context ends it when the caller goes away.
var artifactClient = &http.Client{Transport: sockhttp.Transport(&http.Transport{
	Proxy:                 nil,
	ResponseHeaderTimeout: 60 * time.Second,
	MaxIdleConnsPerHost:   4,
	IdleConnTimeout:       90 * time.Second,
})}

func (g *Gateway) artifactContent(c *gin.Context) {
	req, err := buildRequest(c, g.cfg.MaxBody)
	if err != nil {
		writeError(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), g.cfg.RequestTimeout)
	loc, err := tracking.New(g.nc).LocateArtifact(ctx, req)
	cancel()
	if err != nil {
		writeError(c, err)
		return
	}
	if c.Request.Method == http.MethodHead {
		// The listing's size and the name's type are the answer; no bytes
		// need to move.
		h := c.Writer.Header()
		h.Set("Content-Type", loc.ContentType)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Disposition", disposition(loc.ContentType, loc.Name))
		h.Set("Content-Length", strconv.FormatInt(loc.Size, 10))
		c.Status(http.StatusOK)
		return
	}
	up, err := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, loc.URL, nil)
	if err != nil {
		writeError(c, fmt.Errorf("building artifact request: %w", err))
		return
	}
	resp, err := artifactClient.Do(up)
	if err != nil {
		writeError(c, events.Errorf(http.StatusBadGateway, "the tracking server does not answer for artifact %q: %v", loc.Path, err))
		return
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		writeError(c, events.Errorf(http.StatusNotFound, "artifact %q is gone from the tracking server: %s", loc.Path, upstreamMessage(resp.Body)))
		return
	case resp.StatusCode != http.StatusOK:
		writeError(c, events.Errorf(http.StatusBadGateway, "the tracking server answered HTTP %d for artifact %q: %s", resp.StatusCode, loc.Path, upstreamMessage(resp.Body)))
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", loc.ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", disposition(loc.ContentType, loc.Name))
	switch {
	case resp.ContentLength >= 0:
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	case loc.Size > 0:
		h.Set("Content-Length", strconv.FormatInt(loc.Size, 10))
	}
	c.Status(http.StatusOK)
	if _, err := io.Copy(c.Writer, resp.Body); err != nil && !errors.Is(err, context.Canceled) {
		// Headers are sent; all that is left is to log and cut the stream.
		g.logFor(c).Warn("streaming artifact", "path", loc.Path, "err", err)
	}
}

// disposition shows text, JSON and images inline and downloads the rest;
// HTML and SVG are never inline, since they could run script on the
// gateway's origin.
func disposition(contentType, name string) string {
	kind := "attachment"
	if (strings.HasPrefix(contentType, "text/") && !strings.HasPrefix(contentType, "text/html")) ||
		strings.HasPrefix(contentType, "application/json") || strings.HasPrefix(contentType, "application/yaml") ||
		(strings.HasPrefix(contentType, "image/") && !strings.HasPrefix(contentType, "image/svg")) {
		kind = "inline"
	}
	if v := mime.FormatMediaType(kind, map[string]string{"filename": name}); v != "" {
		return v
	}
	return kind
}

// upstreamMessage is the start of an error body, for the error message.
func upstreamMessage(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, 512))
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "no details"
	}
	return s
}
