package gateway

import (
	"context"
	"encoding/json"
	"testing"
)

// TestWebhookOwnershipRule: the route table's hookOwn rule, with a real
// webhook store (FerretDB) and dispatcher (JetStream): owners manage the
// webhooks of their projects, viewers get a 403 that says what is needed,
// strangers the answer for a project or webhook that does not exist, and
// a webhook for every project needs an admin.
func TestWebhookOwnershipRule(t *testing.T) {
	w := newAuthWorld(t)
	w.g.cfg.Webhooks.Home = t.TempDir()
	w.g.cfg.Webhooks.Allow = "127.0.0.0/8"
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := w.g.startWebhooks(ctx, "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	alice, bob, carol := w.user("alice"), w.user("bob"), w.user("carol")
	p := w.project(alice, "hooked")
	w.must(w.do(alice, "PUT", "/projects/hooked/members/carol", map[string]string{"role": "viewer"}), 200)

	body := map[string]any{"url": "http://127.0.0.1:9/", "project_id": p.ID}
	w.must(w.do(alice, "POST", "/webhooks", map[string]any{"url": "http://127.0.0.1:9/"}), 403)
	var h struct{ ID string }
	_ = json.Unmarshal([]byte(w.must(w.do(alice, "POST", "/webhooks", body), 201).body), &h)

	missing := w.must(w.do(bob, "GET", "/webhooks/nosuch", nil), 404)
	for _, tok := range []string{bob, carol} {
		for _, m := range []string{"GET", "DELETE"} {
			if a := w.do(tok, m, "/webhooks/"+h.ID, nil); a.status != 404 || a.body != `{"code":"404","message":"webhook \"`+h.ID+`\" not found: list webhooks with GET /webhooks"}` {
				t.Errorf("%s /webhooks/{id} by a non-owner: %d %s (missing: %s)", m, a.status, a.body, missing.body)
			}
		}
		w.must(w.do(tok, "GET", "/webhooks/"+h.ID+"/deliveries", nil), 404)
		w.must(w.do(tok, "POST", "/webhooks/"+h.ID+"/test", nil), 404)
	}
	w.must(w.do(bob, "POST", "/webhooks", body), 404)   // the project does not exist for him
	w.must(w.do(carol, "POST", "/webhooks", body), 403) // a viewer sees it, may not hook it
	w.must(w.do(w.admin, "GET", "/webhooks/"+h.ID, nil), 200)
	w.must(w.do(alice, "GET", "/webhooks/"+h.ID, nil), 200)
	w.must(w.do(alice, "DELETE", "/webhooks/"+h.ID, nil), 200)
	w.must(w.do(alice, "GET", "/webhooks/"+h.ID, nil), 404)
}
