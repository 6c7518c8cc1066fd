package gateway

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The third-party files the panel embeds are exactly those of the npm
// packages pinned in webui/package-lock.json (`make webui` installs
// them; without node_modules only the pins are checked).
func TestWebUIVendorMatchesNPM(t *testing.T) {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	var lock struct {
		Packages map[string]struct {
			Version   string `json:"version"`
			Integrity string `json:"integrity"`
		} `json:"packages"`
	}
	readJSON(t, "webui/package.json", &pkg)
	readJSON(t, "webui/package-lock.json", &lock)
	for name, pin := range pkg.Dependencies {
		locked := lock.Packages["node_modules/"+name]
		if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(pin) || locked.Version != pin || locked.Integrity == "" {
			t.Errorf("%s must be pinned exactly: package.json %q, lock %q (%q)", name, pin, locked.Version, locked.Integrity)
		}
	}
	from := map[string]string{
		"preact-htm.js": "htm/preact/standalone.module.js", "LICENSE-htm": "htm/LICENSE",
		"uPlot.esm.js": "uplot/dist/uPlot.esm.js", "uPlot.min.css": "uplot/dist/uPlot.min.css", "LICENSE-uplot": "uplot/LICENSE",
	}
	entries, err := webUIFS.ReadDir("webui/vendor")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(from) {
		t.Errorf("webui/vendor has %d files, want %d (%v)", len(entries), len(from), from)
	}
	nm := filepath.Join("webui", "node_modules")
	if _, err := os.Stat(nm); err != nil {
		t.Log("webui/node_modules absent: run `make webui` to compare the files too")
		return
	}
	for name, src := range from {
		want, err := os.ReadFile(filepath.Join(nm, src))
		if err != nil {
			t.Fatal(err)
		}
		got, err := webUIFS.ReadFile("webui/vendor/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("webui/vendor/%s differs from node_modules/%s: run `npm-verify.sh webui vendor TestWebUIVendorMatchesNPM --update`", name, src)
		}
	}
}

// The page and its files are served without a token, with a policy that
// keeps them to the gateway's origin; the page's imports all resolve.
func TestWebUIServed(t *testing.T) {
	_, e, _ := testGateway(t, Config{Auth: true}, nil, nil)
	w := serve(e, http.MethodGet, "/", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "http") {
		t.Fatalf("CSP %q", csp)
	}
	// Every file the page and its modules name must be served.
	seen := map[string]bool{}
	var walk func(path string)
	ref := regexp.MustCompile(`(?:src|href)="(/ui/[^"]+)"|from '(\.{1,2}/[^']+)'|import '(\.{1,2}/[^']+)'`)
	walk = func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		w := serve(e, http.MethodGet, path, nil)
		if w.Code != 200 {
			t.Errorf("GET %s: %d", path, w.Code)
			return
		}
		if strings.HasSuffix(path, ".js") && !strings.Contains(w.Header().Get("Content-Type"), "javascript") {
			t.Errorf("%s served as %q: browsers refuse modules that are not JavaScript", path, w.Header().Get("Content-Type"))
		}
		for _, m := range ref.FindAllStringSubmatch(w.Body.String(), -1) {
			switch {
			case m[1] != "":
				walk(m[1])
			case m[2] != "" || m[3] != "":
				rel := m[2] + m[3]
				dir := path[:strings.LastIndex(path, "/")]
				walk(filepath.Clean(dir + "/" + rel))
			}
		}
	}
	walk("/")
	if !seen["/ui/vendor/preact-htm.js"] || !seen["/ui/vendor/uPlot.esm.js"] {
		t.Fatalf("the page does not load its libraries: %v", seen)
	}
	if w := serve(e, http.MethodGet, "/ui/app/nothing.js", nil); w.Code != 404 {
		t.Fatalf("unknown file: %d", w.Code)
	}
	if w := serve(e, http.MethodGet, "/ui/../openapi.yaml", nil); w.Code == 200 && strings.Contains(w.Body.String(), "openapi:") {
		t.Fatal("/ui/ serves files outside the panel")
	}
}
