package domain

import (
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

func TestDeletedNeverLive(t *testing.T) {
	d := Deployment{DesiredState: DesiredDeleted, Status: StatusStopping}
	if !d.Deleted() || !d.Live() {
		t.Fatal("a deployment being deleted is deleted for the API and live until its server stops")
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
