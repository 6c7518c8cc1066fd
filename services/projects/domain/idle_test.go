package domain

import (
	"strings"
	"testing"
	"time"
)

func TestParseIdleTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "90s": 90 * time.Second, "15m": 15 * time.Minute, " 2h ": 2 * time.Hour} {
		d, ok, err := ParseIdleTimeout(in)
		if err != nil || !ok || d != want {
			t.Errorf("ParseIdleTimeout(%q) = %v, %v, %v; want %v", in, d, ok, err, want)
		}
	}
	if _, ok, err := ParseIdleTimeout(""); ok || err != nil {
		t.Errorf(`ParseIdleTimeout("") = ok %v, err %v; want the default`, ok, err)
	}
	for _, bad := range []string{"-1m", "10", "soon", "500ms", "721h", strings.Repeat("0", 32) + "1s"} {
		if _, _, err := ParseIdleTimeout(bad); err == nil {
			t.Errorf("ParseIdleTimeout(%q) accepted", bad)
		}
	}
}
