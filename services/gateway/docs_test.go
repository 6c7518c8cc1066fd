package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestOpenAPIServed(t *testing.T) {
	_, e, _ := testGateway(t, Config{}, nil, nil)
	w := serve(e, http.MethodGet, "/openapi.yaml", nil)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/yaml" {
		t.Fatalf("/openapi.yaml: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	raw, _ := specFS.ReadFile("openapi.yaml")
	if !bytes.Equal(w.Body.Bytes(), raw) {
		t.Error("/openapi.yaml is not the embedded document")
	}
	w = serve(e, http.MethodGet, "/openapi.json", nil)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" || doc.Paths["/projects"]["post"] == nil {
		t.Errorf("JSON document: openapi %q, %d paths", doc.OpenAPI, len(doc.Paths))
	}
}

func TestDocsPage(t *testing.T) {
	_, e, _ := testGateway(t, Config{}, nil, nil)
	w := serve(e, http.MethodGet, "/docs", nil)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("/docs: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	page := w.Body.String()
	// Every script and style the page loads is served by the gateway.
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 4 {
		t.Fatalf("page references %v", refs)
	}
	for _, m := range refs {
		ref := m[1]
		if strings.Contains(ref, "//") {
			t.Errorf("the page loads %q from elsewhere", ref)
			continue
		}
		// Relative to /docs, as a browser resolves it.
		w := serve(e, http.MethodGet, "/"+ref, nil)
		if w.Code != http.StatusOK {
			t.Errorf("%s: %d", ref, w.Code)
		}
		want := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}[filepath.Ext(ref)]
		if got := w.Header().Get("Content-Type"); got != want {
			t.Errorf("%s: content type %q, want %q", ref, got, want)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", ref)
		}
	}
	// The initializer points Swagger UI at our JSON document and turns off
	// the outside validator badge, so the page works offline.
	w = serve(e, http.MethodGet, "/docs/init.js", nil)
	js := w.Body.String()
	if !strings.Contains(js, `"openapi.json"`) || !strings.Contains(js, "validatorUrl: null") || strings.Contains(js, "http") {
		t.Errorf("init.js:\n%s", js)
	}
}

func TestDocsAssets(t *testing.T) {
	_, e, _ := testGateway(t, Config{}, nil, nil)
	w := serve(e, http.MethodGet, "/docs/swagger-ui-bundle.js", nil)
	want, _ := swaggerUIFS.ReadFile("swaggerui/dist/swagger-ui-bundle.js")
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), want) {
		t.Fatalf("bundle: %d, %d bytes", w.Code, w.Body.Len())
	}
	etag := w.Header().Get("ETag")
	if etag == "" || w.Header().Get("Cache-Control") == "" {
		t.Errorf("no validators: ETag %q, Cache-Control %q", etag, w.Header().Get("Cache-Control"))
	}
	if w := serve(e, http.MethodGet, "/docs/swagger-ui-bundle.js", nil, "If-None-Match", etag); w.Code != http.StatusNotModified {
		t.Errorf("revalidation: %d", w.Code)
	}
	for path, code := range map[string]int{
		"/docs/LICENSE":             http.StatusOK,
		"/docs/nope.js":             http.StatusNotFound,
		"/docs/../openapi.yaml":     http.StatusNotFound, // cleaned to /openapi.yaml by gin? either way no file escape
		"/docs/swagger-ui.css.map":  http.StatusNotFound,
		"/docs/":                    http.StatusMovedPermanently,
		"/docs/index.html":          http.StatusNotFound,
		"/docs/swagger-ui-bundle.j": http.StatusNotFound,
	} {
		w := serve(e, http.MethodGet, path, nil)
		if path == "/docs/../openapi.yaml" {
			if w.Code == http.StatusOK && w.Header().Get("Content-Type") != "application/yaml" {
				t.Errorf("%s escaped: %q", path, w.Header().Get("Content-Type"))
			}
			continue
		}
		if w.Code != code {
			t.Errorf("%s: %d, want %d", path, w.Code, code)
		}
	}
	if w := serve(e, http.MethodGet, "/docs/", nil); w.Header().Get("Location") != "/docs" {
		t.Errorf("/docs/ redirects to %q", w.Header().Get("Location"))
	}
}

// The embedded files are the pinned npm package's, byte for byte. The
// comparison needs `npm ci` in swaggerui/ (`make swaggerui` does it);
// without node_modules only the pins are checked.
func TestSwaggerUIMatchesNPM(t *testing.T) {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	var lock struct {
		Packages map[string]struct {
			Version   string `json:"version"`
			Integrity string `json:"integrity"`
		} `json:"packages"`
	}
	readJSON(t, "swaggerui/package.json", &pkg)
	readJSON(t, "swaggerui/package-lock.json", &lock)
	pin := pkg.Dependencies["swagger-ui-dist"]
	locked := lock.Packages["node_modules/swagger-ui-dist"]
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(pin) || locked.Version != pin || locked.Integrity == "" {
		t.Fatalf("swagger-ui-dist must be pinned exactly: package.json %q, lock %q (%q)", pin, locked.Version, locked.Integrity)
	}
	entries, err := swaggerUIFS.ReadDir("swaggerui/dist")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	wantNames := []string{"LICENSE", "NOTICE", "favicon-32x32.png", "swagger-ui-bundle.js", "swagger-ui-bundle.js.LICENSE.txt", "swagger-ui.css"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("embedded files %v, want %v", names, wantNames)
	}

	nm := filepath.Join("swaggerui", "node_modules", "swagger-ui-dist")
	if _, err := os.Stat(nm); err != nil {
		t.Skip("swaggerui/node_modules is absent: run `make swaggerui` to compare the files with the npm package")
	}
	var installed struct {
		Version string `json:"version"`
	}
	readJSON(t, filepath.Join(nm, "package.json"), &installed)
	if installed.Version != pin {
		t.Fatalf("node_modules has swagger-ui-dist %s, the pin is %s: run npm ci in swaggerui/", installed.Version, pin)
	}
	for _, n := range names {
		embedded, _ := swaggerUIFS.ReadFile("swaggerui/dist/" + n)
		fromNPM, err := os.ReadFile(filepath.Join(nm, n))
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if !bytes.Equal(embedded, fromNPM) {
			t.Errorf("swaggerui/dist/%s differs from swagger-ui-dist %s: run `npm-verify.sh swaggerui dist TestSwaggerUIMatchesNPM --update`", n, pin)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
