package domain

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseType(t *testing.T) {
	for in, want := range map[string]Type{"": TypeLocal, "local": TypeLocal, "gcp": TypeGCP} {
		if got, err := ParseType(in); err != nil || got != want {
			t.Errorf("ParseType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"k8s", "GCP", " local"} {
		if _, err := ParseType(bad); err == nil {
			t.Errorf("ParseType(%q) accepted", bad)
		}
	}
}

func TestValidateVersion(t *testing.T) {
	for _, ok := range []string{"", "1", "42", "champion", "prod_v2", "a-b"} {
		if err := ValidateVersion(ok); err != nil {
			t.Errorf("ValidateVersion(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"0", "1/2", "../x", "a b", "-x", "v?1"} {
		if err := ValidateVersion(bad); err == nil {
			t.Errorf("ValidateVersion(%q) accepted", bad)
		}
	}
	if !IsVersionNumber("12") || IsVersionNumber("champion") || IsVersionNumber("01") {
		t.Error("IsVersionNumber tells numbers from aliases wrongly")
	}
}

// A deployment being deleted is hidden from the API at once, but its
// server may still exist until it has stopped (so a restarted deployer
// adopts and stops it); once deleted, no server exists.
func TestBeingDeletedIsHiddenButLiveUntilStopped(t *testing.T) {
	stopping := Deployment{DesiredState: DesiredDeleted, Status: StatusStopping}
	if !stopping.Deleted() || !stopping.Live() {
		t.Fatalf("being deleted: Deleted %v Live %v, want both true", stopping.Deleted(), stopping.Live())
	}
	deleted := Deployment{DesiredState: DesiredDeleted, Status: StatusDeleted}
	if !deleted.Deleted() || deleted.Live() {
		t.Fatalf("deleted: Deleted %v Live %v, want deleted and not live", deleted.Deleted(), deleted.Live())
	}
}

func TestParseStatus(t *testing.T) {
	for _, s := range Statuses {
		if got, err := ParseStatus(string(s)); err != nil || got != s {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "null", "RUNNING"} {
		if _, err := ParseStatus(bad); err == nil || !strings.Contains(err.Error(), "use one of pending, starting") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// A deployment without a server shows null host, port and url, as the
// original's clients expect; a running one shows them.
func TestDeploymentJSONAddress(t *testing.T) {
	b, err := json.Marshal(Deployment{ID: "1", Status: StatusStopped})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"host", "port", "url"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("stopped: %s = %v (present %v), want null", k, v, ok)
		}
	}
	if m["id"] != "1" || m["status"] != "stopped" {
		t.Errorf("stopped: other fields lost: %s", b)
	}
	b, _ = json.Marshal(Deployment{ID: "2", Host: "127.0.0.1", Port: 6000, URL: "http://127.0.0.1:6000"})
	_ = json.Unmarshal(b, &m)
	if m["host"] != "127.0.0.1" || m["port"] != 6000.0 || m["url"] != "http://127.0.0.1:6000" {
		t.Errorf("running: %s", b)
	}
}

func TestParseFollow(t *testing.T) {
	for _, c := range []struct{ version, follow, resolve, follows string }{
		{"", "", "", ""},
		{"3", "", "3", ""},
		{"champion", "", "champion", ""},
		{"@champion", "", "champion", "champion"},
		{"", "champion", "champion", "champion"},
		{"@champion", "champion", "champion", "champion"},
		{"champion", "champion", "champion", "champion"},
		{"", "@champion", "champion", "champion"},
	} {
		resolve, follows, err := ParseFollow(c.version, c.follow)
		if err != nil || resolve != c.resolve || follows != c.follows {
			t.Errorf("ParseFollow(%q, %q) = %q, %q, %v; want %q, %q", c.version, c.follow, resolve, follows, err, c.resolve, c.follows)
		}
	}
	for _, c := range []struct{ version, follow, want string }{
		{"@", "", "names no alias"},
		{"@champion", "prod", "disagree"},
		{"3", "champion", "disagree"},
		{"", "1", "invalid follow_alias"},
		{"@a b", "", "invalid follow_alias"},
		{"1/2", "", "invalid version"},
	} {
		if _, _, err := ParseFollow(c.version, c.follow); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseFollow(%q, %q): %v, want an error saying %q", c.version, c.follow, err, c.want)
		}
	}
}
