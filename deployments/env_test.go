package deployments

import (
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
			t.Errorf("MLPANEL_%s is read at %s:%d but not documented in .env.example: add a comment saying what it does and a line `# MLPANEL_%s=<default>`",
				name, reads[0].File, reads[0].Line, name)
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
			t.Errorf(".env.example:%d: MLPANEL_%s=%s, but the code's default is %s (%s:%d)",
				doc.Line, name, doc.Value, strings.Join(statics, " or "), reads[0].File, reads[0].Line)
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
