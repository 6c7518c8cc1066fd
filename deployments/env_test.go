package deployments

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEnvExampleDocumentsEverySetting keeps .env.example complete and true:
// every MLPANEL_ setting the code reads is there, with the code's default
// where the default is a constant, and nothing there is unknown to the code.
func TestEnvExampleDocumentsEverySetting(t *testing.T) {
	root := repoRoot(t)
	code := byName(codeSettings(t, root))
	docs := envExample(t, root)

	for _, name := range sortedKeys(code) {
		reads := code[name]
		doc, ok := docs[name]
		if !ok {
			t.Errorf("MLPANEL_%s (%s) is not documented in .env.example: add a comment saying what it does and a line `# MLPANEL_%s=<default>`",
				name, reads[0].Where, name)
			continue
		}
		// Some names are read in more than one place (each service's main
		// and the all-in-one); the documented default must be one of them.
		var statics []string
		matched := false
		for _, r := range reads {
			if r.Dynamic {
				matched = true // a computed default is described in words
				continue
			}
			statics = append(statics, r.Default)
			if sameValue(r.Kind, doc.Value, r.Default) {
				matched = true
			}
		}
		if !matched {
			t.Errorf(".env.example:%d: MLPANEL_%s=%s, but the code's default is %s (%s)",
				doc.Line, name, doc.Value, strings.Join(statics, " or "), reads[0].Where)
		}
	}
	for _, name := range sortedKeys(docs) {
		if _, ok := code[name]; ok {
			continue
		}
		if why, ok := pendingSettings[name]; ok {
			t.Logf("MLPANEL_%s is documented ahead of the code (%s)", name, why)
			continue
		}
		t.Errorf(".env.example:%d: MLPANEL_%s is documented but no code reads it: remove it, or fix its name", docs[name].Line, name)
	}
}

// TestReadmeSettingsTable keeps the README's settings table complete and
// true in the same way: every setting of the commands' structs is a row
// with the code's default (`value`, or "empty"), and no row is unknown.
func TestReadmeSettingsTable(t *testing.T) {
	root := repoRoot(t)
	code := byName(codeSettings(t, root))
	rows := readmeSettings(t, root)
	for _, name := range sortedKeys(code) {
		reads := code[name]
		row, ok := rows[name]
		if !ok {
			t.Errorf("MLPANEL_%s (%s) is missing from the README's settings table: add a row `| `MLPANEL_%s` | <default> | <what it does> |`",
				name, reads[0].Where, name)
			continue
		}
		var statics []string
		matched := false
		for _, r := range reads {
			if r.Dynamic {
				matched = true
				continue
			}
			statics = append(statics, r.Default)
			if sameValue(r.Kind, row.Value, r.Default) {
				matched = true
			}
		}
		if !matched {
			t.Errorf("README.md:%d: MLPANEL_%s's default is shown as %q, but the code's is %s (%s)",
				row.Line, name, row.Value, strings.Join(statics, " or "), reads[0].Where)
		}
	}
	for _, name := range sortedKeys(rows) {
		if _, ok := code[name]; !ok && pendingSettings[name] == "" {
			t.Errorf("README.md:%d: MLPANEL_%s is in the settings table but no command reads it", rows[name].Line, name)
		}
	}
}

var readmeRow = regexp.MustCompile("^\\| `MLPANEL_([A-Z0-9_]+)` \\| ([^|]*) \\|")

// readmeSettings reads the rows of the table under "## Settings".
func readmeSettings(t testing.TB, root string) map[string]documented {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]documented{}
	in := false
	for n, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = line == "## Settings"
			continue
		}
		m := readmeRow.FindStringSubmatch(line)
		if !in || m == nil {
			continue
		}
		v := strings.TrimSpace(m[2])
		if v == "empty" {
			v = ""
		}
		if prev, dup := out[m[1]]; dup {
			t.Errorf("README.md:%d: MLPANEL_%s is in the table twice (first on line %d)", n+1, m[1], prev.Line)
		}
		out[m[1]] = documented{Value: strings.Trim(v, "`"), Line: n + 1}
	}
	if len(out) == 0 {
		t.Fatal("README.md has no settings table under ## Settings")
	}
	return out
}
