package gateway

import (
	"embed"
	"path"
	"sync"

	"github.com/gin-gonic/gin"
)

// webUIFS is the web panel: its own code in webui/app (plain ES modules,
// no build step) and the pinned third-party files in webui/vendor, which
// TestWebUIVendorMatchesNPM and `make webui` (npm-verify.sh) check against npm.
//
//go:embed webui/app webui/vendor
var webUIFS embed.FS

// webCSP keeps the panel to its own origin: no inline script, nothing
// fetched from elsewhere. uPlot sets inline style attributes; artifact
// images are shown from blob: URLs.
const webCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// webFiles serves the panel's files. They change only with a new
// binary; the ETag makes the check cheap, and no-cache means an upgrade
// is seen at once.
var webFiles = assetServer{
	sync.OnceValues(func() (map[string]asset, error) { return embeddedAssets(webUIFS, "webui") }),
	map[string]string{"Content-Security-Policy": webCSP, "Cache-Control": "no-cache"},
	"no web panel file %q: open /",
}

// The panel is served at / and its files under /ui/. The page is a
// client of the public API only; it routes with the URL fragment, so the
// server needs no fallback route.
func serveWebIndex(c *gin.Context) { webFiles.serve(c, "app/index.html") }

func serveWebFile(c *gin.Context) { webFiles.serve(c, path.Clean(c.Param("file"))[1:]) }
