package conf

import (
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

type inner struct {
	// Zone is nested, as the deployer's GCP settings are.
	Zone string        `env:"MLPANEL_TEST_ZONE" envDefault:"us-central1-a"`
	Wait time.Duration `env:"MLPANEL_TEST_INNER_WAIT" envDefault:"5s"`
}

type testConfig struct {
	Addr    string        `env:"MLPANEL_TEST_ADDR" envDefault:"127.0.0.1:8080"`
	Max     int64         `env:"MLPANEL_TEST_MAX" envDefault:"1048576"`
	N       int           `env:"MLPANEL_TEST_N" envDefault:"5"`
	On      bool          `env:"MLPANEL_TEST_ON" envDefault:"true"`
	Wait    time.Duration `env:"MLPANEL_TEST_WAIT" envDefault:"2m"`
	Ports   proc.Range    `env:"MLPANEL_TEST_RANGE" envDefault:"5000-5099"`
	Advert  string        `env:"MLPANEL_TEST_ADVERT" conf:"computed"`
	Derived string        // no tag: not a setting
	GCP     inner
}

func TestLoadDefaults(t *testing.T) {
	var c testConfig
	if err := Load(&c); err != nil {
		t.Fatal(err)
	}
	want := testConfig{Addr: "127.0.0.1:8080", Max: 1 << 20, N: 5, On: true, Wait: 2 * time.Minute,
		Ports: proc.Range{Lo: 5000, Hi: 5099}, GCP: inner{Zone: "us-central1-a", Wait: 5 * time.Second}}
	if c != want {
		t.Fatalf("defaults %+v, want %+v", c, want)
	}
}

func TestLoadReadsTheEnvironment(t *testing.T) {
	t.Setenv("MLPANEL_TEST_N", "7")
	t.Setenv("MLPANEL_TEST_ON", "false")
	t.Setenv("MLPANEL_TEST_RANGE", "7000-7009")
	t.Setenv("MLPANEL_TEST_ZONE", "europe-west1-b")
	t.Setenv("MLPANEL_TEST_ADDR", "") // empty is unset, as it always was
	var c testConfig
	if err := Load(&c); err != nil {
		t.Fatal(err)
	}
	if c.N != 7 || c.On || c.Ports != (proc.Range{Lo: 7000, Hi: 7009}) || c.GCP.Zone != "europe-west1-b" || c.Addr != "127.0.0.1:8080" {
		t.Fatalf("loaded %+v", c)
	}
}

// A malformed value stops the start with a message naming the variable
// (not the Go field) and what it should look like; every bad one is named.
func TestLoadNamesEveryMalformedVariable(t *testing.T) {
	for name, tc := range map[string]struct{ val, want string }{
		"MLPANEL_TEST_N":          {"five", `MLPANEL_TEST_N="five": want an integer`},
		"MLPANEL_TEST_MAX":        {"1MB", `MLPANEL_TEST_MAX="1MB": want an integer`},
		"MLPANEL_TEST_ON":         {"yes please", `MLPANEL_TEST_ON="yes please": want true or false`},
		"MLPANEL_TEST_WAIT":       {"2 minutes", `MLPANEL_TEST_WAIT="2 minutes": want a duration such as 30s`},
		"MLPANEL_TEST_INNER_WAIT": {"soon", `MLPANEL_TEST_INNER_WAIT="soon": want a duration`},
		"MLPANEL_TEST_RANGE":      {"9-1", `MLPANEL_TEST_RANGE: port range "9-1"`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, tc.val)
			var c testConfig
			err := Load(&c)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Load with %s=%q: %v; want an error containing %q", name, tc.val, err, tc.want)
			}
		})
	}
	t.Setenv("MLPANEL_TEST_N", "x")
	t.Setenv("MLPANEL_TEST_WAIT", "y")
	var c testConfig
	err := Load(&c)
	if err == nil || !strings.Contains(err.Error(), "MLPANEL_TEST_N") || !strings.Contains(err.Error(), "MLPANEL_TEST_WAIT") {
		t.Fatalf("two bad values gave %v; want both named", err)
	}
}

func TestSettingsListsTaggedFieldsNestedToo(t *testing.T) {
	var names []string
	for _, s := range Settings(testConfig{}) {
		names = append(names, s.Name)
		if s.Name == "MLPANEL_TEST_ADVERT" && !s.Computed {
			t.Error("MLPANEL_TEST_ADVERT is conf:\"computed\" but not marked so")
		}
		if s.Name == "MLPANEL_TEST_ZONE" && (s.Default != "us-central1-a" || s.Field != "GCP.Zone") {
			t.Errorf("nested setting %+v", s)
		}
	}
	want := "MLPANEL_TEST_ADDR MLPANEL_TEST_MAX MLPANEL_TEST_N MLPANEL_TEST_ON MLPANEL_TEST_WAIT MLPANEL_TEST_RANGE MLPANEL_TEST_ADVERT MLPANEL_TEST_ZONE MLPANEL_TEST_INNER_WAIT"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("Settings = %s\nwant       %s", got, want)
	}
	if u := Usage(testConfig{}); !strings.Contains(u, "MLPANEL_TEST_WAIT=2m\n") || !strings.Contains(u, "MLPANEL_TEST_ADVERT=(computed)") {
		t.Fatalf("usage:\n%s", u)
	}
}
