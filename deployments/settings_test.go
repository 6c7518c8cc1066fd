package deployments

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/services/deployer"
	"github.com/mlpanel/mlpanel/services/gateway"
	"github.com/mlpanel/mlpanel/services/projects"
	"github.com/mlpanel/mlpanel/services/tracking"
)

// repoRoot is the repository root, one level above this module.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// setting is one MLPANEL_* setting of a command's settings structs.
type setting struct {
	Name string // without the prefix, e.g. "HTTP_ADDR"
	Kind string // "Duration" for time.Duration (compared by value), else the Go type
	// Default is the envDefault tag, or "" with Dynamic set when the code
	// computes it (conf:"computed", e.g. from another setting).
	Default string
	Dynamic bool
	Command string // the compose service, or "mlpanel" for the all-in-one
	Where   string // the struct field, e.g. "projects.Config.Ports"
}

// commands are the settings structs each command loads, by compose
// service name ("mlpanel" is the all-in-one): the lists the mains hand to
// boot.Main for -h, so what is checked here is what the binaries read.
var commands = map[string][]any{
	"projects": projects.Settings,
	"tracking": tracking.Settings,
	"deployer": deployer.Settings,
	"gateway":  gateway.Settings,
	"mlpanel":  stack.Settings,
}

// pendingSettings may be documented and set in compose before the code
// that reads them lands, by name with the reason (e.g. "AUTH": "issue 5").
// Remove a name once the code reads it; the test then checks it like any
// other.
var pendingSettings = map[string]string{}

// codeSettings lists every setting of every command, from the tagged
// fields of their settings structs (pkg/platform/conf.Settings): the
// structs are the source of truth the documentation is checked against.
func codeSettings(t testing.TB, _ string) []setting {
	t.Helper()
	var out []setting
	for _, cmd := range sortedKeys(commands) {
		for _, cfg := range commands[cmd] {
			typ := reflect.TypeOf(cfg)
			for _, s := range conf.Settings(cfg) {
				name, ok := strings.CutPrefix(s.Name, conf.Prefix)
				if !ok {
					t.Errorf("%s.%s reads %s: every setting's name starts with %s", typ, s.Field, s.Name, conf.Prefix)
					continue
				}
				kind := s.Type.String()
				if s.Type == reflect.TypeFor[time.Duration]() {
					kind = "Duration"
				}
				out = append(out, setting{Name: name, Kind: kind, Default: s.Default, Dynamic: s.Computed,
					Command: cmd, Where: typ.String() + "." + s.Field})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("found no MLPANEL_ settings in the commands' structs")
	}
	return out
}

// documented is one setting line of .env.example.
type documented struct {
	Value string
	Line  int
}

var envLine = regexp.MustCompile(`^#?\s*MLPANEL_([A-Z0-9_]+)=(.*)$`)

// envExample reads the settings of .env.example: commented or not, each
// `MLPANEL_NAME=value` line documents NAME with its default value.
func envExample(t testing.TB, root string) map[string]documented {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatalf("the settings documentation: %v", err)
	}
	defer f.Close()
	out := map[string]documented{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		m := envLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		if prev, dup := out[m[1]]; dup {
			t.Errorf(".env.example:%d: MLPANEL_%s documented twice (first on line %d)", n, m[1], prev.Line)
		}
		out[m[1]] = documented{Value: strings.TrimSpace(m[2]), Line: n}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading .env.example: %v", err)
	}
	return out
}

// sameValue compares a documented default with the code's, durations by
// value (2m and 2m0s are the same).
func sameValue(kind, doc, code string) bool {
	if kind == "Duration" {
		a, err1 := time.ParseDuration(doc)
		b, err2 := time.ParseDuration(code)
		return err1 == nil && err2 == nil && a == b
	}
	return doc == code
}

// byName groups the settings by name.
func byName(ss []setting) map[string][]setting {
	out := map[string][]setting{}
	for _, s := range ss {
		out[s.Name] = append(out[s.Name], s)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
