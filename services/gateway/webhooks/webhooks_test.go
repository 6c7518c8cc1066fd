package webhooks

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheckURL(t *testing.T) {
	g := Guard{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Self:  []HostPort{{Host: "127.0.0.1", Port: "8080"}, {Host: "panel.example.com", Port: "443"}},
		Resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
			return map[string][]netip.Addr{
				"hooks.example.com": {netip.MustParseAddr("93.184.216.34")},
				"evil.example.com":  {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.1.2.3")},
				"panel.example.com": {netip.MustParseAddr("93.184.216.35")},
			}[host], nil
		},
	}
	for _, c := range []struct{ url, rule string }{
		{"https://hooks.example.com/x", ""},
		{"http://127.0.0.1:9000/hook", ""}, // loopback, allowed by the list
		{"ftp://hooks.example.com/", "http:// or https://"},
		{"hooks.example.com/x", "http:// or https://"},
		{"https://user:pw@hooks.example.com/", "credentials"},
		{"http://169.254.169.254/latest/meta-data", "metadata"},
		{"http://[fd00:ec2::254]/", "metadata"},
		{"http://metadata.google.internal/computeMetadata/v1/", "metadata"},
		{"http://10.0.0.5/", "MLPANEL_WEBHOOK_ALLOW"},
		{"http://evil.example.com/", "MLPANEL_WEBHOOK_ALLOW"}, // one of its addresses is private
		{"http://[::1]:9000/", "MLPANEL_WEBHOOK_ALLOW"},
		{"http://127.0.0.1:8080/webhooks", "own address"},
		{"https://panel.example.com/x", "own address"},
	} {
		_, err := g.CheckURL(context.Background(), c.url)
		switch {
		case c.rule == "" && err != nil:
			t.Errorf("%s: refused: %v", c.url, err)
		case c.rule != "" && (err == nil || !strings.Contains(err.Error(), c.rule)):
			t.Errorf("%s: want an error naming %q, got %v", c.url, c.rule, err)
		}
	}
	if _, err := ParseAllow("10.0.0.0/8, 127.0.0.1"); err != nil {
		t.Error(err)
	}
	if _, err := ParseAllow("10.0.0.0/33"); err == nil || !strings.Contains(err.Error(), "MLPANEL_WEBHOOK_ALLOW") {
		t.Errorf("a bad CIDR: %v", err)
	}
}

func TestCheckTypes(t *testing.T) {
	if err := CheckTypes([]string{"io.mlpanel.model.alias_set", "io.mlpanel.run.*", "io.mlpanel.deployment.running"}); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"alias_set", "io.mlpanel.model.moved", "io.mlpanel.*", "io.mlpanel.user.*"} {
		if err := CheckTypes([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	h := Webhook{Types: []string{"io.mlpanel.model.*"}, Projects: []string{"3"}}
	if !h.Matches("io.mlpanel.model.alias_set", "3") || h.Matches("io.mlpanel.model.alias_set", "4") || h.Matches("io.mlpanel.run.finished", "3") {
		t.Error("filter matching is wrong")
	}
}

// The signature is the one of the Standard Webhooks specification's
// example (id msg_p5jXN8AQM9LWM0D4loKWxJek, timestamp 1614265330, body
// {"test": 2432232314}, secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw).
func TestSignMatchesTheSpec(t *testing.T) {
	got, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
}

func TestSealer(t *testing.T) {
	k, err := LoadKey("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewSealer(k)
	sealed := s.Seal("w1", "whsec_abc")
	if strings.Contains(sealed, "abc") {
		t.Error("the sealed secret shows the secret")
	}
	if got, err := s.Open("w1", sealed); err != nil || got != "whsec_abc" {
		t.Errorf("open: %q %v", got, err)
	}
	if _, err := s.Open("w2", sealed); err == nil {
		t.Error("a secret opened under another webhook's id")
	}
	if _, err := LoadKey("short", ""); err == nil || !strings.Contains(err.Error(), "MLPANEL_SECRET_KEY") {
		t.Errorf("a bad key: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	d := &Dispatcher{cfg: Config{MaxBackoff: 10 * time.Second}}
	var got []time.Duration
	for n := uint64(1); n <= 6; n++ {
		got = append(got, d.Backoff(n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff %v, want %v", got, want)
		}
	}
}
