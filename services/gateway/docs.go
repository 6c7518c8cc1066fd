package gateway

import (
	"embed"
	"fmt"
	"net/http"
	"path"
	"sync"

	"github.com/gin-gonic/gin"
)

//go:embed openapi.yaml
var specFS embed.FS

// swaggerUIFS holds the few files of the npm package swagger-ui-dist that
// /docs needs, committed so `go build` works without npm; the test
// TestSwaggerUIMatchesNPM and `make swaggerui` (npm-verify.sh) check they equal the
// version pinned in swaggerui/package-lock.json.
//
//go:embed swaggerui/dist
var swaggerUIFS embed.FS

// docsPage is Swagger UI's page. Links are relative to /docs, so the page
// also works behind a proxy that mounts the panel under a prefix; the
// document is read from the same origin, nothing from elsewhere.
const docsPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mlpanel API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js" charset="utf-8"></script>
<script src="docs/init.js" charset="utf-8"></script>
</body>
</html>
`

// docsInit starts Swagger UI. It is a file of its own, not inline, so the
// page's Content-Security-Policy can forbid inline script. validatorUrl
// null stops Swagger UI from asking an outside validator for a badge.
const docsInit = `window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
};
`

// docsCSP keeps the docs page to its own origin: Swagger UI's styles set
// inline style attributes and its icons are data: URLs.
const docsCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// docsAssets are Swagger UI's files and its starter, by name below /docs/.
var docsAssets = sync.OnceValues(func() (map[string]asset, error) {
	assets, err := embeddedAssets(swaggerUIFS, "swaggerui/dist")
	if err != nil {
		return nil, err
	}
	assets["init.js"] = newAsset("init.js", []byte(docsInit))
	return assets, nil
})

// docsFiles serves them; pinned files change only with a new binary, so
// browsers revalidate daily.
var docsFiles = assetServer{docsAssets, map[string]string{"Cache-Control": "public, max-age=86400"}, "no Swagger UI file %q: open /docs"}

// specJSON is the document as JSON, converted once from the YAML.
var specJSON = sync.OnceValues(func() ([]byte, error) {
	doc, err := loadSpec()
	if err != nil {
		return nil, err
	}
	b, err := doc.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding the OpenAPI document as JSON: %w", err)
	}
	return b, nil
})

// serveSpecYAML answers the OpenAPI document as it is embedded.
func serveSpecYAML(c *gin.Context) {
	b, err := specFS.ReadFile("openapi.yaml")
	if err != nil {
		writeError(c, fmt.Errorf("reading the embedded OpenAPI document: %w", err))
		return
	}
	c.Data(http.StatusOK, "application/yaml", b)
}

// serveSpecJSON answers the OpenAPI document as JSON.
func serveSpecJSON(c *gin.Context) {
	b, err := specJSON()
	if err != nil {
		writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json", b)
}

// serveDocsPage answers Swagger UI's page.
func serveDocsPage(c *gin.Context) {
	c.Header("Content-Security-Policy", docsCSP)
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(docsPage))
}

// serveDocsFile answers one of Swagger UI's files.
func serveDocsFile(c *gin.Context) {
	name := path.Clean(c.Param("file"))[1:]
	if name == "" {
		// /docs/ would resolve the page's relative links one level too deep.
		c.Redirect(http.StatusMovedPermanently, "/docs")
		return
	}
	docsFiles.serve(c, name)
}
