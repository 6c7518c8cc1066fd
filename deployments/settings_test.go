package deployments

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
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

// setting is one MLPANEL_* read found in the code.
type setting struct {
	Name string // without the prefix, e.g. "HTTP_ADDR"
	Kind string // String, Int, Bool, Duration, or Getenv
	// Default is the default's value as the documentation writes it, or ""
	// with Dynamic set when the code computes it (e.g. DefaultMlflow()).
	Default string
	Dynamic bool
	File    string // relative to the repository root
	Line    int
}

// pendingSettings may be documented and set in compose before the code
// that reads them lands, by name with the reason (e.g. "AUTH": "issue 5").
// Remove a name once the code reads it; the test then checks it like any
// other.
var pendingSettings = map[string]string{}

var settingName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// codeSettings finds every setting the Go code reads: calls of the
// conf.Reader methods String/Int/Bool/Duration/PortRange whose first argument is an
// upper-case literal name, and os.Getenv/os.LookupEnv of "MLPANEL_..."
// literals. It parses the source (no type checking), so a receiver not named
// like the conf.Reader is still found; tests and the virtualenv are skipped.
func codeSettings(t testing.TB, root string) []setting {
	t.Helper()
	var out []setting
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "vendor" || name == "testdata" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			name, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			pos := fset.Position(call.Pos())
			switch method := sel.Sel.Name; method {
			case "String", "Int", "Bool", "Duration", "PortRange":
				if len(call.Args) != 2 || !settingName.MatchString(name) {
					return true
				}
				def, dynamic := staticValue(call.Args[1], method)
				out = append(out, setting{Name: name, Kind: method, Default: def, Dynamic: dynamic, File: rel, Line: pos.Line})
			case "Getenv", "LookupEnv":
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "os" && strings.HasPrefix(name, "MLPANEL_") {
					out = append(out, setting{Name: strings.TrimPrefix(name, "MLPANEL_"), Kind: "Getenv", Dynamic: true, File: rel, Line: pos.Line})
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatalf("scanning the Go code for settings: %v", err)
	}
	if len(out) == 0 {
		t.Fatal("found no MLPANEL_ settings in the code: the scanner is broken")
	}
	return out
}

// staticValue evaluates a default that is a constant expression the way
// .env.example writes it: strings as they are, integers in decimal, booleans,
// and durations such as 2*time.Minute. Anything else is dynamic.
func staticValue(e ast.Expr, kind string) (string, bool) {
	switch kind {
	case "String", "PortRange":
		if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			s, err := strconv.Unquote(lit.Value)
			return s, err != nil
		}
	case "Bool":
		if id, ok := e.(*ast.Ident); ok && (id.Name == "true" || id.Name == "false") {
			return id.Name, false
		}
	case "Int":
		if n, ok := evalInt(e); ok {
			return strconv.FormatInt(n, 10), false
		}
	case "Duration":
		if n, ok := evalInt(e); ok {
			return time.Duration(n).String(), false
		}
	}
	return "", true
}

// evalInt evaluates integer literals, time unit constants, *, << and
// parentheses: enough for every default in the code base.
func evalInt(e ast.Expr) (int64, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind != token.INT {
			return 0, false
		}
		n, err := strconv.ParseInt(x.Value, 0, 64)
		return n, err == nil
	case *ast.ParenExpr:
		return evalInt(x.X)
	case *ast.SelectorExpr:
		if pkg, ok := x.X.(*ast.Ident); ok && pkg.Name == "time" {
			units := map[string]time.Duration{
				"Nanosecond": time.Nanosecond, "Microsecond": time.Microsecond, "Millisecond": time.Millisecond,
				"Second": time.Second, "Minute": time.Minute, "Hour": time.Hour,
			}
			if u, ok := units[x.Sel.Name]; ok {
				return int64(u), true
			}
		}
	case *ast.BinaryExpr:
		a, ok1 := evalInt(x.X)
		b, ok2 := evalInt(x.Y)
		if !ok1 || !ok2 {
			return 0, false
		}
		switch x.Op {
		case token.MUL:
			return a * b, true
		case token.SHL:
			return a << b, true
		case token.ADD:
			return a + b, true
		}
	}
	return 0, false
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
