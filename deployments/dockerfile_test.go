package deployments

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// instruction is one parsed Dockerfile instruction.
type instruction struct {
	Cmd   string   // lower case: from, copy, run, user, ...
	Args  []string // the words after the instruction
	Flags []string // --from=build, --mount=..., --chown=...
	Line  int
}

// stage is what follows one FROM.
type stage struct {
	From, Name string
	Steps      []instruction
}

// parseDockerfile parses with BuildKit's own parser (what `docker build`
// uses), then splits the instructions into stages.
func parseDockerfile(t testing.TB, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser warning: %s", path, w.Short)
	}
	var stages []stage
	for _, n := range res.AST.Children {
		in := instruction{Cmd: strings.ToLower(n.Value), Flags: n.Flags, Line: n.StartLine}
		for a := n.Next; a != nil; a = a.Next {
			in.Args = append(in.Args, a.Value)
		}
		switch {
		case in.Cmd == "from":
			st := stage{From: in.Args[0]}
			if len(in.Args) == 3 && strings.EqualFold(in.Args[1], "as") {
				st.Name = in.Args[2]
			}
			stages = append(stages, st)
		case len(stages) == 0:
			// ARG before the first FROM.
		default:
			stages[len(stages)-1].Steps = append(stages[len(stages)-1].Steps, in)
		}
	}
	return stages
}

func flagValue(flags []string, name string) (string, bool) {
	for _, f := range flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// dockerignore returns the matcher of the Dockerfile's own ignore file
// (<Dockerfile>.dockerignore, which BuildKit prefers), else the context's.
func dockerignore(t testing.TB, root, dockerfile string) *patternmatcher.PatternMatcher {
	t.Helper()
	for _, p := range []string{dockerfile + ".dockerignore", filepath.Join(root, ".dockerignore")} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		defer f.Close()
		patterns, err := ignorefile.ReadAll(f)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return pm
	}
	pm, _ := patternmatcher.New(nil)
	return pm
}

var (
	goBuildPath = regexp.MustCompile(`(?:^|\s)(\./[A-Za-z0-9_./-]+)`)
	goWorkUse   = regexp.MustCompile(`(?m)^\s*(\./[A-Za-z0-9_./-]+)\s*$`)
)

// TestDockerfiles checks what a build needs without a Docker engine: each
// Dockerfile parses, is multi-stage, ends as a non-root user, copies only
// sources that exist and are not ignored, builds packages that exist, and
// keeps every go.work module in the build context.
func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	p := loadCompose(t)
	gowork, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range appServices {
		t.Run(name, func(t *testing.T) {
			s := p.Services[name]
			if s.Build == nil {
				t.Fatal("no build section")
			}
			path := s.Build.Dockerfile
			if !filepath.IsAbs(path) {
				path = filepath.Join(root, path)
			}
			stages := parseDockerfile(t, path)
			ignored := dockerignore(t, root, path)
			if len(stages) < 2 {
				t.Fatalf("%d stage(s): want a multi-stage build (compile in one stage, ship only the binary)", len(stages))
			}
			final := stages[len(stages)-1]
			if strings.HasPrefix(final.From, "golang") {
				t.Errorf("the final stage is %s: ship a small runtime image, not the Go toolchain", final.From)
			}
			user := ""
			for _, in := range final.Steps {
				if in.Cmd == "user" {
					user = in.Args[0]
				}
			}
			if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
				t.Errorf("the final stage runs as %q: want a non-root USER", user)
			}

			known := byName(codeSettings(t, root))
			built := map[string]bool{} // binaries that go build writes to /out/
			var pkgs []string          // the packages handed to go build
			cgoEnv := ""               // the build's ENV CGO_ENABLED, if set
			names := map[string]bool{}
			for _, st := range stages {
				for _, in := range st.Steps {
					switch in.Cmd {
					case "copy", "add":
						if from, ok := flagValue(in.Flags, "from"); ok {
							if !names[from] {
								t.Errorf("line %d: COPY --from=%s names no earlier stage", in.Line, from)
							}
							continue
						}
						if len(in.Args) < 2 {
							t.Errorf("line %d: %s needs a source and a destination", in.Line, in.Cmd)
							continue
						}
						for _, src := range in.Args[:len(in.Args)-1] {
							checkSource(t, root, ignored, in.Line, src)
						}
					case "run":
						// Packages handed to `go build` must exist.
						cmd := strings.Join(in.Args, " ")
						if !strings.Contains(cmd, "go build") {
							continue
						}
						for _, m := range goBuildPath.FindAllStringSubmatch(cmd, -1) {
							pkg := filepath.Join(root, m[1])
							if st, err := os.Stat(pkg); err != nil || !st.IsDir() {
								t.Errorf("line %d: go build %s: no such package directory", in.Line, m[1])
							}
							built[filepath.Base(m[1])] = true
							pkgs = append(pkgs, m[1])
						}
					case "env":
						// ENV KEY VALUE pairs: a misspelt setting would be
						// ignored silently.
						for i := 0; i+1 < len(in.Args); i += 2 {
							if in.Args[i] == "CGO_ENABLED" {
								cgoEnv = in.Args[i+1]
							}
							if name, ok := strings.CutPrefix(in.Args[i], "MLPANEL_"); ok && len(known[name]) == 0 {
								t.Errorf("line %d: ENV %s is no setting the code reads", in.Line, in.Args[i])
							}
						}
					}
				}
				if st.Name != "" {
					names[st.Name] = true
				}
			}

			// The entrypoint and the compose healthcheck run binaries this
			// Dockerfile builds (the final stage copies /out/ to /usr/local/bin).
			for _, in := range final.Steps {
				if in.Cmd == "entrypoint" && len(in.Args) > 0 {
					if bin, ok := strings.CutPrefix(in.Args[0], "/usr/local/bin/"); !ok || !built[bin] {
						t.Errorf("line %d: ENTRYPOINT %s is not a binary this Dockerfile builds (%v)", in.Line, in.Args[0], built)
					}
				}
			}
			if hc := s.HealthCheck; hc != nil && len(hc.Test) > 1 {
				if bin, ok := strings.CutPrefix(hc.Test[1], "/usr/local/bin/"); ok && !built[bin] {
					t.Errorf("the compose healthcheck runs %s, which this Dockerfile does not build (%v)", hc.Test[1], built)
				}
			}

			checkCgo(t, root, pkgs, cgoEnv, final.From)

			// `go build` refuses a go.work whose modules are missing.
			for _, m := range goWorkUse.FindAllStringSubmatch(string(gowork), -1) {
				mod := filepath.ToSlash(filepath.Join(strings.TrimPrefix(m[1], "./"), "go.mod"))
				if skip, _ := ignored.MatchesOrParentMatches(mod); skip {
					t.Errorf("%s is excluded by the ignore file, but go.work lists its module", mod)
				}
			}
		})
	}
}

// checkCgo fails when the image's binaries and its cgo setting disagree:
// a package that links C code (the tracking service's SQLite reads) built
// with CGO_ENABLED=0 silently loses it (its pure-Go fallback or a stub
// that fails at run time), and a cgo binary needs a C library in the
// final image, which distroless/static and scratch do not have. The C
// code is found from the source: `go list -deps` of the built packages.
func checkCgo(t *testing.T, root string, pkgs []string, cgoEnv, finalFrom string) {
	t.Helper()
	if len(pkgs) == 0 {
		return
	}
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{if and .CgoFiles (not .Standard)}}{{.ImportPath}}{{end}}"}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %v: %v\n%s", pkgs, err, out)
	}
	cgoPkgs := strings.Fields(string(out))
	usesCgo := cgoEnv != "0"
	if len(cgoPkgs) > 0 && !usesCgo {
		t.Errorf("builds %v with CGO_ENABLED=0, but they link C code (%v): set ENV CGO_ENABLED=1 and ship a final image with a C library (e.g. distroless/base)", pkgs, cgoPkgs)
	}
	if usesCgo && (finalFrom == "scratch" || strings.Contains(finalFrom, "/static")) {
		t.Errorf("the binaries are built with cgo (CGO_ENABLED=%q) but the final image %s has no C library: use e.g. gcr.io/distroless/base-debian12, or set CGO_ENABLED=0", cgoEnv, finalFrom)
	}
}

// checkSource fails unless a COPY source exists in the build context and
// is not excluded by the ignore file.
func checkSource(t *testing.T, root string, ignored *patternmatcher.PatternMatcher, line int, src string) {
	t.Helper()
	if strings.Contains(src, "$") {
		t.Errorf("line %d: COPY source %q uses a variable: cannot check it", line, src)
		return
	}
	matches, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(src)))
	if err != nil || len(matches) == 0 {
		t.Errorf("line %d: COPY source %q does not exist in the build context %s", line, src, root)
		return
	}
	if src == "." {
		return
	}
	rel := filepath.ToSlash(filepath.Clean(src))
	if skip, _ := ignored.MatchesOrParentMatches(rel); skip {
		t.Errorf("line %d: COPY source %q is excluded by the .dockerignore", line, src)
	}
}
