package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// TestFormBodiesTyped: the original mlpanel's clients sent forms; a form's
// admin=true creates an admin on a team server (it was a 400 "cannot
// unmarshal string into bool"), as url-encoded and as multipart.
func TestFormBodiesTyped(t *testing.T) {
	cfg := panelCfg
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.Ports = proc.Range{Lo: 15155, Hi: 15156}
	cfg.Projects.StopOnExit = true
	cfg.Gateway.Addr = "127.0.0.1:15192"
	cfg.Gateway.Auth = true
	cfg.Gateway.AdminToken = "mlp_form-admin-token"
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); assertSpec(t, s) })

	send := func(path, contentType string, vals url.Values) response {
		t.Helper()
		var body bytes.Buffer
		ct := contentType
		if contentType == "multipart/form-data" {
			mw := multipart.NewWriter(&body)
			for k, v := range vals {
				_ = mw.WriteField(k, v[0])
			}
			_ = mw.Close()
			ct = mw.FormDataContentType()
		} else {
			body.WriteString(vals.Encode())
		}
		req, _ := http.NewRequest(http.MethodPost, s.URL+path, &body)
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+cfg.Gateway.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	}
	for i, ct := range []string{"application/x-www-form-urlencoded", "multipart/form-data"} {
		name := []string{"formadmin", "multiadmin"}[i]
		r := send("/users", ct, url.Values{"name": {name}, "admin": {"true"}})
		expect(t, r, http.StatusCreated)
		var u struct {
			Name  string `json:"name"`
			Admin bool   `json:"admin"`
		}
		r.JSON(t, &u)
		if u.Name != name || !u.Admin {
			t.Fatalf("%s: created %s, want an admin", ct, r.Body)
		}
		r = send("/users", ct, url.Values{"name": {name + "2"}, "admin": {"1"}})
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Message(), `admin="1": want true or false`) {
			t.Fatalf("%s: admin=1: %d %s", ct, r.Status, r.Body)
		}
		// The new admin's token works as an admin's.
		r = send("/users/"+name+"/tokens", ct, url.Values{"name": {"form"}})
		expect(t, r, http.StatusCreated)
		var tok struct{ Token string }
		r.JSON(t, &tok)
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/users", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var users []json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&users)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(users) < 2 {
			t.Fatalf("%s: GET /users as the form-made admin: %d, %d users", ct, resp.StatusCode, len(users))
		}
	}
}
