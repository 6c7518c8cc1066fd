package domain

import (
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	good := []string{"a", "churn", "Churn_v2.1-final", "x" + strings.Repeat("y", 62)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want ok", n, err)
		}
	}
	bad := []string{"", "1abc", "_a", "a b", "a/b", "ä", "x" + strings.Repeat("y", 63), "../etc"}
	for _, n := range bad {
		err := ValidateName(n)
		if err == nil {
			t.Errorf("ValidateName(%q) = ok, want an error", n)
			continue
		}
		if !strings.Contains(err.Error(), "starts with a letter") {
			t.Errorf("ValidateName(%q) error %q does not state the rule", n, err)
		}
	}
}

func TestActive(t *testing.T) {
	cases := []struct {
		p    Project
		want bool
	}{
		{Project{DesiredState: DesiredRunning, Status: StatusFailed}, true},
		{Project{DesiredState: DesiredStopped, Status: StatusRunning}, true},
		{Project{DesiredState: DesiredStopped, Status: StatusTerminated}, false},
		{Project{DesiredState: DesiredStopped, Status: StatusArchived}, false},
	}
	for _, c := range cases {
		if got := c.p.Active(); got != c.want {
			t.Errorf("%+v.Active() = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for _, s := range Statuses {
		if got, err := ParseStatus(string(s)); err != nil || got != s {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "null", "RUNNING"} {
		if _, err := ParseStatus(bad); err == nil || !strings.Contains(err.Error(), "use one of terminated, starting, running, failed, archived") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
