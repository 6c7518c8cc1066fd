package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// TestProjectBadInput: every malformed, missing, oversized or conflicting
// input gets the right status and a message that says what to do, and
// leaves nothing half-written.
func TestProjectBadInput(t *testing.T) {
	before := countProjects(t)
	cases := []struct {
		name        string
		method      string
		path        string
		body        any
		contentType string
		status      int
		says        string
	}{
		{"missing name", "POST", "/projects", map[string]string{"description": "x"}, "", 400, "name is required"},
		{"empty body", "POST", "/projects", nil, "", 400, "name is required"},
		{"invalid name", "POST", "/projects", map[string]string{"name": "1-starts-with-digit"}, "", 400, "starts with a letter"},
		{"name with slash", "POST", "/projects", map[string]string{"name": "a/b"}, "", 400, "starts with a letter"},
		{"malformed JSON", "POST", "/projects", `{"name": "x",`, "application/json", 400, "malformed JSON"},
		{"JSON array", "POST", "/projects", `["x"]`, "application/json", 400, "JSON object"},
		{"wrong field type", "POST", "/projects", `{"name": 5}`, "application/json", 400, "malformed request body"},
		{"oversized body", "POST", "/projects", `{"name":"big","description":"` + strings.Repeat("x", 2<<20) + `"}`, "application/json", 413, "larger than"},
		{"long description", "POST", "/projects", map[string]string{"name": "longdesc", "description": strings.Repeat("x", 5000)}, "", 400, "at most 4096"},
		{"unknown id", "GET", "/projects/999999", nil, "", 404, "not found"},
		{"unknown name", "GET", "/projects/nosuch", nil, "", 404, "GET /projects"},
		{"run unknown", "PUT", "/projects/nosuch/run", nil, "", 404, "not found"},
		{"terminate unknown", "PUT", "/projects/nosuch/terminate", nil, "", 404, "not found"},
		{"delete unknown", "DELETE", "/projects/nosuch", nil, "", 404, "not found"},
		{"logs unknown", "GET", "/projects/nosuch/logs", nil, "", 404, "not found"},
		{"bad _start", "GET", "/projects?_start=x", nil, "", 400, "_start"},
		{"bad _order", "GET", "/projects?_order=UP", nil, "", 400, "ASC or DESC"},
		{"end before start", "GET", "/projects?_start=5&_end=2", nil, "", 400, "before _start"},
		{"bad sort key", "GET", "/projects?_sort=secret", nil, "", 400, "cannot sort"},
		{"bad logs lines", "GET", "/projects/nosuch/logs?lines=abc", nil, "", 400, "whole number"},
		{"unknown status filter", "GET", "/projects?status=null", nil, "", 400, "use one of terminated, starting"},
		{"empty status filter", "GET", "/projects?status=", nil, "", 400, "use one of terminated"},
		{"null name", "POST", "/projects", `{"name": null}`, "application/json", 400, `body field "name" is null`},
		{"null description", "PUT", "/projects/nosuch", `{"description": null}`, "application/json", 400, `body field "description" is null`},
		{"unknown deployment type filter", "GET", "/deployments?type=null", nil, "", 400, "use local or gcp"},
		{"unknown deployment status filter", "GET", "/deployments?status=null", nil, "", 400, "use one of pending, starting"},
		{"empty audit until", "GET", "/audit?until=", nil, "", 400, "RFC 3339"},
		{"unknown route", "GET", "/nothing-here", nil, "", 404, "no endpoint"},
		{"wrong method", "PATCH", "/projects", nil, "", 405, "not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r response
			if c.contentType != "" {
				r = call(t, c.method, c.path, c.body, c.contentType)
			} else {
				r = call(t, c.method, c.path, c.body)
			}
			expect(t, r, c.status)
			var e struct{ Code, Message string }
			r.JSON(t, &e)
			if e.Code != itoa(c.status) || !strings.Contains(e.Message, c.says) {
				t.Fatalf("error body %s: want code %q and a message containing %q", r.Body, itoa(c.status), c.says)
			}
		})
	}
	if after := countProjects(t); after != before {
		t.Fatalf("bad input changed the number of projects from %d to %d", before, after)
	}

	t.Run("duplicate name", func(t *testing.T) {
		createProject(t, "dup")
		r := call(t, http.MethodPost, "/projects", map[string]string{"name": "dup"})
		expect(t, r, http.StatusConflict)
		if !strings.Contains(r.Message(), "already exists") {
			t.Fatalf("message %q", r.Message())
		}
		other := createProject(t, "dup2")
		r = call(t, http.MethodPut, "/projects/"+other.ID, map[string]string{"name": "dup"})
		expect(t, r, http.StatusConflict)
		if got := getProject(t, other.ID); got.Name != "dup2" {
			t.Fatalf("a refused rename changed the name to %q", got.Name)
		}
	})

	t.Run("form bodies as in the original", func(t *testing.T) {
		r := call(t, http.MethodPost, "/projects", "name=formed&description=from+a+form", "application/x-www-form-urlencoded")
		expect(t, r, http.StatusCreated)
		var p struct{ Name, Description string }
		r.JSON(t, &p)
		if p.Name != "formed" || p.Description != "from a form" {
			t.Fatalf("form create gave %+v", p)
		}
		body := "--XX\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nmultiparted\r\n--XX--\r\n"
		expect(t, call(t, http.MethodPost, "/projects", body, "multipart/form-data; boundary=XX"), http.StatusCreated)
		r = call(t, http.MethodPut, "/projects/formed", "description=changed", "application/x-www-form-urlencoded")
		expect(t, r, http.StatusOK)
		r.JSON(t, &p)
		if p.Name != "formed" || p.Description != "changed" {
			t.Fatalf("form update gave %+v", p)
		}
	})

	t.Run("archive and restore rules", func(t *testing.T) {
		p := createProject(t, "archivable")
		expect(t, call(t, http.MethodPut, "/projects/"+p.ID+"/restore", nil), http.StatusConflict)
		r := call(t, http.MethodPut, "/projects/"+p.ID+"/archive", nil)
		expect(t, r, http.StatusOK)
		var got project
		r.JSON(t, &got)
		if got.Status != "archived" {
			t.Fatalf("archive gave status %q", got.Status)
		}
		r = call(t, http.MethodPut, "/projects/"+p.ID+"/run", nil)
		expect(t, r, http.StatusConflict)
		if !strings.Contains(r.Message(), "restore") {
			t.Fatalf("run on archived says %q; want it to say to restore first", r.Message())
		}
		// archived projects stay listed
		r = call(t, http.MethodGet, "/projects?status=archived", nil)
		expect(t, r, http.StatusOK)
		if !strings.Contains(string(r.Body), `"archivable"`) {
			t.Fatalf("archived project not listed: %s", r.Body)
		}
		r = call(t, http.MethodPut, "/projects/"+p.ID+"/restore", nil)
		expect(t, r, http.StatusOK)
		r.JSON(t, &got)
		if got.Status != "terminated" {
			t.Fatalf("restore gave status %q", got.Status)
		}
	})

	t.Run("list window and true total", func(t *testing.T) {
		all := call(t, http.MethodGet, "/projects", nil)
		var ps []project
		all.JSON(t, &ps)
		total := all.Header.Get("X-Total-Count")
		if total != itoa(len(ps)) || len(ps) < 3 {
			t.Fatalf("X-Total-Count %s for %d projects", total, len(ps))
		}
		r := call(t, http.MethodGet, "/projects?_start=1&_end=3&_sort=name&_order=DESC", nil)
		expect(t, r, http.StatusOK)
		var page []project
		r.JSON(t, &page)
		if len(page) != 2 || r.Header.Get("X-Total-Count") != total {
			t.Fatalf("page of %d with total %s; want 2 with total %s", len(page), r.Header.Get("X-Total-Count"), total)
		}
		if page[0].Name < page[1].Name {
			t.Fatalf("DESC by name gave %s before %s", page[0].Name, page[1].Name)
		}
	})
}

// TestShutdownAndExhaustion runs a second panel as `make run` would
// (servers stop on exit) with a one-port range: the second project gets a
// 503 naming the range, and closing the panel leaves no mlflow process.
func TestShutdownAndExhaustion(t *testing.T) {
	cfg := panelCfg
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.Ports = proc.Range{Lo: 15140, Hi: 15140}
	cfg.Projects.StopOnExit = true
	second, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { second.Close(); assertSpec(t, second) }()
	use := func(s *stack.Stack) func() { old := panel; panel = s; return func() { panel = old } }
	restore := use(second)
	defer restore()

	p := createProject(t, "only")
	r := call(t, http.MethodPost, "/projects", map[string]string{"name": "one-too-many"})
	expect(t, r, http.StatusServiceUnavailable)
	if !strings.Contains(r.Message(), "15140-15140") {
		t.Fatalf("exhaustion message %q does not name the range", r.Message())
	}
	expect(t, call(t, http.MethodPut, "/projects/only/run", nil), http.StatusOK)
	p = waitProject(t, p.ID, "running", 3*time.Minute)

	restore()
	second.Close()
	if groupAlive(p.Pid) {
		t.Fatal("an mlflow process survived closing the panel")
	}
	if !proc.PortFree("127.0.0.1", p.Port) {
		t.Fatalf("port %d still taken after closing the panel", p.Port)
	}
	if _, err := os.Stat(filepath.Join(cfg.Home, "projects", p.ID, "mlflow.db")); err != nil {
		t.Fatalf("the project's database is gone after shutdown: %v", err)
	}
}

func countProjects(t *testing.T) int {
	r := call(t, http.MethodGet, "/projects", nil)
	expect(t, r, http.StatusOK)
	n, _ := atoi(r.Header.Get("X-Total-Count"))
	return n
}
