package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// cookies answers the browser's cookies for the panel, HttpOnly ones too
// (the DevTools protocol sees what page scripts cannot).
func (b *browser) cookies() map[string]*network.Cookie {
	b.t.Helper()
	out := map[string]*network.Cookie{}
	b.run("reading cookies", 10*time.Second, chromedp.ActionFunc(func(ctx context.Context) error {
		cs, err := network.GetCookies().WithURLs([]string{panel.URL + "/"}).Do(ctx)
		for _, c := range cs {
			out[c.Name] = c
		}
		return err
	}))
	return out
}

// TestSignInThroughTheSessionCookie: the panel signs in with the
// gateway's HttpOnly session cookie, so no script on the page can read
// the token or the session; a reload stays signed in, sign-out ends the
// session on the server, and a session whose token is revoked sends the
// page back to sign-in with a word on why.
func TestSignInThroughTheSessionCookie(t *testing.T) {
	carol := newUser(t, "carol", false)
	b := newBrowser(t, 1280, 800)
	b.run("opening the panel signed out", 30*time.Second,
		chromedp.Navigate(panel.URL+"/"),
		chromedp.WaitVisible(`[data-testid=token]`, chromedp.ByQuery))
	if n := b.count(`[role=alert]`); n != 0 {
		t.Errorf("a first visit shows %d error boxes on the sign-in page: %q", n, b.text(`[role=alert]`))
	}
	b.screenshot("signin")
	// A wrong token: the gateway's message, inline.
	b.run("signing in with a wrong token", 20*time.Second,
		chromedp.SendKeys(`[data-testid=token]`, "mlp_not-a-token", chromedp.ByQuery),
		chromedp.Click(`[data-testid=signin]`, chromedp.ByQuery),
		waitJS(`(document.querySelector('[role=alert]')||{}).textContent?.includes('invalid or revoked token')`))
	b.signIn(carol, "carol")

	ck := b.cookies()
	se := ck["mlpanel_session"]
	if se == nil || !se.HTTPOnly || se.SameSite != network.CookieSameSiteLax {
		t.Fatalf("session cookie %+v: want an HttpOnly SameSite=Lax mlpanel_session", se)
	}
	var seen struct {
		Cookie  string
		Storage int
		Page    bool
	}
	b.run("looking for the token from the page", 10*time.Second, chromedp.Evaluate(`({
		Cookie: document.cookie,
		Storage: sessionStorage.length + localStorage.length,
		Page: document.documentElement.outerHTML.includes(`+jsString(carol)+`),
	})`, &seen))
	if strings.Contains(seen.Cookie, "mlpanel_session") || strings.Contains(seen.Cookie, se.Value) || strings.Contains(seen.Cookie, carol) {
		t.Errorf("page scripts can read the session: document.cookie = %q", seen.Cookie)
	}
	if seen.Storage != 0 || seen.Page {
		t.Errorf("the token is kept where scripts read it: %d web storage entries, in the page: %v", seen.Storage, seen.Page)
	}

	// A reload keeps the session: no token is typed again.
	b.run("reloading", 30*time.Second,
		chromedp.Reload(),
		waitJS(`(document.querySelector('[data-testid=me]')||{}).textContent === 'carol'`),
		waitJS(`(document.querySelector('[data-testid=live]')||{}).textContent === 'live'`))

	// The cookie works for writes from the panel (the CSRF token rides along).
	b.run("creating a project with the cookie", 30*time.Second,
		chromedp.SendKeys(`[data-testid=new-project-name]`, "cookieproj", chromedp.ByQuery),
		chromedp.Click(`[data-testid=create-project]`, chromedp.ByQuery),
		chromedp.WaitVisible(`tr[data-project="cookieproj"]`, chromedp.ByQuery))
	t.Cleanup(func() { as(t, adminToken, "DELETE", "/projects/cookieproj", nil) })

	// Sign out: the session ends on the server, not just in this tab.
	b.run("signing out", 20*time.Second,
		chromedp.Click(`[data-testid=signout]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid=token]`, chromedp.ByQuery))
	if c := b.cookies()["mlpanel_session"]; c != nil {
		t.Errorf("the session cookie outlived sign-out: %+v", c)
	}
	req, _ := http.NewRequest("GET", panel.URL+"/me", nil)
	req.AddCookie(&http.Cookie{Name: "mlpanel_session", Value: se.Value})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the signed-out session still answers GET /me with %d", resp.StatusCode)
	}
	b.run("a reload after sign-out stays signed out", 20*time.Second,
		chromedp.Reload(),
		chromedp.WaitVisible(`[data-testid=token]`, chromedp.ByQuery))

	// A session whose token is revoked ends at the next call.
	b.signIn(carol, "carol")
	var toks []struct{ ID string }
	as(t, adminToken, "GET", "/users/carol/tokens", nil).JSON(t, &toks)
	for _, tk := range toks {
		expect(t, as(t, adminToken, "DELETE", "/users/carol/tokens/"+tk.ID, nil), 200)
	}
	b.run("the next call after the revocation returns to sign-in", 30*time.Second,
		hash("#/deployments"),
		chromedp.WaitVisible(`[data-testid=token]`, chromedp.ByQuery),
		waitJS(`(document.querySelector('[role=alert]')||{}).textContent?.includes('Your session has ended')`))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// TestAdminPagesInABrowser: an admin manages users, tokens, a project's
// members and reads the audit log from the panel, and each change is
// what the API then answers.
func TestAdminPagesInABrowser(t *testing.T) {
	b := newBrowser(t, 1280, 900)
	b.signIn(adminToken, "admin (admin)")

	// Users: create one from the form.
	b.run("creating a user", 30*time.Second,
		hash("#/admin/users"),
		chromedp.WaitVisible(`[data-testid=new-user]`, chromedp.ByQuery),
		chromedp.SendKeys(`[data-testid=new-user]`, "dave", chromedp.ByQuery),
		chromedp.Click(`[data-testid=create-user]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid=users] tr[data-user="dave"]`, chromedp.ByQuery))
	expect(t, as(t, adminToken, "GET", "/users/dave", nil), 200)
	b.run("scrolling to the top", 5*time.Second, chromedp.Evaluate(`window.scrollTo(0,0)`, nil))
	b.screenshot("admin-users")

	// Tokens: the secret is shown once and works; revoking it ends it.
	b.run("creating a token for dave", 30*time.Second,
		hash("#/admin/tokens"),
		chromedp.WaitVisible(`[data-testid=token-user]`, chromedp.ByQuery),
		waitJS(`[...document.querySelectorAll('[data-testid=token-user] option')].some(o => o.value === 'dave')`),
		fill(`[data-testid=token-user]`, "dave"),
		waitJS(`document.querySelector('[data-testid=create-token]')?.textContent.includes('dave')`),
		chromedp.SendKeys(`[data-testid=new-token]`, "ci", chromedp.ByQuery),
		chromedp.Click(`[data-testid=create-token]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid=secret] pre`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid=tokens] tr[data-token="ci"]`, chromedp.ByQuery))
	secret := b.text(`[data-testid=secret] pre`)
	var who struct{ Name string }
	r := as(t, secret, "GET", "/me", nil)
	expect(t, r, 200)
	r.JSON(t, &who)
	if who.Name != "dave" {
		t.Fatalf("the token made in the panel is %q's, want dave's", who.Name)
	}
	b.screenshot("admin-tokens")
	b.run("revoking the token", 30*time.Second,
		chromedp.Click(`[data-testid=tokens] tr[data-token="ci"] [data-testid=revoke]`, chromedp.ByQuery),
		chromedp.Click(`[data-testid=confirm-ok]`, chromedp.ByQuery),
		waitJS(`!document.querySelector('[data-testid=tokens] tr[data-token="ci"]')`))
	expect(t, as(t, secret, "GET", "/me", nil), 401)

	// Members: add dave to a project as editor from its Members tab.
	p := createProject(t, adminToken, "teamproj")
	t.Cleanup(func() { as(t, adminToken, "DELETE", "/projects/"+p.ID, nil) })
	b.run("adding a member", 30*time.Second,
		hash("#/projects/"+p.ID+"/members"),
		chromedp.WaitVisible(`[data-testid=member-user]`, chromedp.ByQuery),
		chromedp.SendKeys(`[data-testid=member-user]`, "dave", chromedp.ByQuery),
		fill(`[data-testid=member-role]`, "editor"),
		chromedp.Click(`[data-testid=add-member]`, chromedp.ByQuery),
		waitJS(`document.querySelector('[data-testid=members] tr[data-member="dave"]')?.textContent.includes('editor')`))
	var members []struct{ User, Role string }
	as(t, adminToken, "GET", "/projects/"+p.ID+"/members", nil).JSON(t, &members)
	found := false
	for _, m := range members {
		found = found || (m.User == "dave" && m.Role == "editor")
	}
	if !found {
		t.Fatalf("members after the form: %+v, want dave as editor", members)
	}
	// Asking for a user who does not exist: the panel's message, on screen.
	b.run("adding a member who does not exist", 30*time.Second,
		chromedp.SendKeys(`[data-testid=member-user]`, "nobody-here", chromedp.ByQuery),
		chromedp.Click(`[data-testid=add-member]`, chromedp.ByQuery),
		waitJS(`[...document.querySelectorAll('.toast.err, [role=alert]')].some(e => e.textContent.includes('nobody-here'))`))

	// Audit: what was just done is there, and a filter narrows it. The
	// entry is written after the answer; wait for the API to have it.
	want := "/projects/" + p.ID + "/members/dave"
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if strings.Contains(string(as(t, adminToken, "GET", "/audit?user=admin&_end=200", nil).Body), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit entry for PUT %s", want)
		}
	}
	b.run("reading the audit log", 30*time.Second,
		hash("#/admin/audit"),
		chromedp.WaitVisible(`[data-testid=audit-user]`, chromedp.ByQuery),
		chromedp.SendKeys(`[data-testid=audit-user]`, "admin", chromedp.ByQuery),
		chromedp.Click(`[data-testid=audit-filter]`, chromedp.ByQuery),
		waitJS(`[...document.querySelectorAll('[data-testid=audit] tbody tr')].some(r => r.textContent.includes('PUT /projects/`+p.ID+`/members/dave'))`),
		waitJS(`[...document.querySelectorAll('[data-testid=audit] tbody tr td:nth-child(2)')].every(td => td.textContent === 'admin')`))
	b.run("scrolling to the top", 5*time.Second, chromedp.Evaluate(`window.scrollTo(0,0)`, nil))
	b.screenshot("admin-audit")
	b.run("filtering the audit log by another user", 30*time.Second,
		fill(`[data-testid=audit-user]`, "nobody-here"),
		chromedp.Click(`[data-testid=audit-filter]`, chromedp.ByQuery),
		waitJS(`document.querySelector('[data-testid=audit] tbody')?.textContent.includes('Nothing recorded for this filter')`))
}
