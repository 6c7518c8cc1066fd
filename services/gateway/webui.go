package gateway

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// webUIFS is the web panel: its own code in webui/app (plain ES modules,
// no build step) and the pinned third-party files in webui/vendor, which
// TestWebUIVendorMatchesNPM and webui/verify.sh check against npm.
//
//go:embed webui/app webui/vendor
var webUIFS embed.FS

func init() {
	dataPlane = append(dataPlane, mountWebUI)
}

// webCSP keeps the panel to its own origin: no inline script, nothing
// fetched from elsewhere. uPlot sets inline style attributes; artifact
// images are shown from blob: URLs.
const webCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

var webAssets = sync.OnceValues(func() (map[string]docsAsset, error) {
	assets := map[string]docsAsset{}
	err := fs.WalkDir(webUIFS, "webui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := webUIFS.ReadFile(p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "text/plain; charset=utf-8" // LICENSE files
		}
		sum := sha256.Sum256(b)
		assets[strings.TrimPrefix(p, "webui/")] = docsAsset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the embedded web panel: %w", err)
	}
	return assets, nil
})

// mountWebUI serves the panel at / and its files under /ui/. The page is
// a client of the public API only; it routes with the URL fragment, so
// the server needs no fallback route.
func mountWebUI(g *Gateway, e *gin.Engine) {
	e.GET("/", func(c *gin.Context) { serveWebAsset(c, "app/index.html") })
	e.GET("/ui/*file", func(c *gin.Context) {
		serveWebAsset(c, path.Clean(c.Param("file"))[1:])
	})
}

func serveWebAsset(c *gin.Context, name string) {
	assets, err := webAssets()
	if err != nil {
		writeError(c, err)
		return
	}
	a, ok := assets[name]
	if !ok {
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"code": "404", "message": fmt.Sprintf("no web panel file %q: open /", name)})
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", webCSP)
	// The files change only with a new binary; the ETag makes the check
	// cheap, and no-cache means an upgrade is seen at once.
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(c.Writer, c.Request, name, time.Time{}, bytes.NewReader(a.body))
}
