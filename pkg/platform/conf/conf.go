// Package conf loads mlpanel settings from MLPANEL_* environment variables
// into each service's Config struct.
//
// A setting is a struct field tagged `env:"MLPANEL_NAME"` with its default in
// `envDefault:"..."` (github.com/caarlos0/env), and a doc comment saying what
// it does. The structs are the one source of truth: .env.example and the
// README's settings table are checked against them (deployments'
// TestEnvExampleDocumentsEverySetting), so a new setting is one tagged field.
// A default the code computes (e.g. from another setting) has no envDefault
// and is marked `conf:"computed"`; the service fills it in after Load.
//
// An empty variable counts as unset. A malformed value is an error at start
// naming the variable, never a silent default.
package conf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// Prefix starts every setting's name.
const Prefix = "MLPANEL_"

// Load fills cfg, a pointer to a settings struct, from the environment.
// Every malformed value is reported, each naming its variable.
func Load(cfg any) error {
	// The parsers below learn the variable they parse from OnSet, which
	// the library calls just before it parses that variable's value, so
	// their errors can name it (the library's own name the Go field).
	var current string
	want := func(what string, parse func(string) (any, error)) env.ParserFunc {
		return func(v string) (any, error) {
			x, err := parse(v)
			if err != nil {
				return nil, setError{fmt.Errorf("%s=%q: want %s", current, v, what)}
			}
			return x, nil
		}
	}
	opts := env.Options{
		OnSet: func(key string, _ any, _ bool) { current = key },
		FuncMap: map[reflect.Type]env.ParserFunc{
			reflect.TypeFor[int](): want("an integer", func(v string) (any, error) { return strconv.Atoi(v) }),
			reflect.TypeFor[int64](): want("an integer", func(v string) (any, error) {
				return strconv.ParseInt(v, 10, 64)
			}),
			reflect.TypeFor[bool](): want("true or false", func(v string) (any, error) { return strconv.ParseBool(v) }),
			reflect.TypeFor[time.Duration](): want("a duration such as 30s", func(v string) (any, error) {
				return time.ParseDuration(v)
			}),
			reflect.TypeFor[Runtime](): func(v string) (any, error) {
				r, err := ParseRuntime(v)
				if err != nil {
					return nil, setError{fmt.Errorf("%s: %w", current, err)}
				}
				return r, nil
			},
			reflect.TypeFor[proc.Range](): func(v string) (any, error) {
				r, err := proc.ParseRange(v)
				if err != nil {
					return nil, setError{fmt.Errorf("%s: %w", current, err)}
				}
				return r, nil
			},
		},
	}
	err := env.ParseWithOptions(cfg, opts)
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("reading settings: %w", err)
	}
	var errs []error
	for _, e := range agg.Errors {
		// The library wraps our message in one naming the Go field, with
		// no Unwrap: take ours back out.
		var pe env.ParseError
		var se setError
		if errors.As(e, &pe) && errors.As(pe.Err, &se) {
			errs = append(errs, se.err)
		} else {
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}

// setError is a malformed value, its message already naming the variable.
type setError struct{ err error }

func (e setError) Error() string { return e.err.Error() }
func (e setError) Unwrap() error { return e.err }

// Setting is one tagged field of a settings struct.
type Setting struct {
	Name    string       // e.g. "MLPANEL_HTTP_ADDR"
	Default string       // the envDefault tag; "" when there is none
	Type    reflect.Type // the field's type, to compare values (2m == 2m0s)
	// Computed: the service derives the default (conf:"computed"); the
	// documentation describes it in words.
	Computed bool
	Field    string // the Go path of the field, e.g. "GCP.Zone"
}

// Settings lists the settings of a settings struct (or a pointer to one),
// nested structs included, in field order: the source of truth that usage
// text and the documentation checks are derived from.
func Settings(cfg any) []Setting {
	t := reflect.TypeOf(cfg)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []Setting
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			key, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			if key == "-" {
				continue // loaded elsewhere, e.g. a service's Config inside the all-in-one's
			}
			if key == "" {
				if f.Type.Kind() == reflect.Struct {
					walk(f.Type, path+f.Name+".")
				}
				continue
			}
			out = append(out, Setting{
				Name: key, Default: f.Tag.Get("envDefault"), Type: f.Type,
				Computed: f.Tag.Get("conf") == "computed", Field: path + f.Name,
			})
		}
	}
	walk(t, "")
	return out
}

// Usage is a plain-text list of the settings of cfgs with their defaults,
// for a command's -h.
func Usage(cfgs ...any) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, c := range cfgs {
		for _, s := range Settings(c) {
			if seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			def := s.Default
			switch {
			case s.Computed:
				def = "(computed)"
			case def == "":
				def = "(empty)"
			}
			fmt.Fprintf(&b, "  %s=%s\n", s.Name, def)
		}
	}
	return b.String()
}

// DefaultMlflow is the mlflow of the repository's .venv, looked for from
// the working directory upwards so that tests in subfolders find it too;
// "mlflow" on PATH when there is none.
func DefaultMlflow() string {
	dir, _ := os.Getwd()
	for {
		p := filepath.Join(dir, ".venv", "bin", "mlflow")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "mlflow"
		}
		dir = parent
	}
}

// Reachable is the host to dial for a server bound to host: a wildcard
// bind is reached on loopback.
func Reachable(host string) string {
	if host == "" || host == "0.0.0.0" || host == "::" {
		return "127.0.0.1"
	}
	return host
}

// CheckMlflow stops a service's start when the mlflow executable it
// runs is missing, saying how to get it.
func CheckMlflow(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("mlflow executable %s: %w (run `make venv` or set MLPANEL_MLFLOW)", path, err)
	}
	return nil
}

// Runner is the settings of a service that runs MLflow processes (the
// projects and deployer services embed it): the data home and the mlflow
// executable.
type Runner struct {
	// Home is the data home: databases, artifacts, logs and sockets.
	// Resolve makes it absolute.
	Home string `env:"MLPANEL_HOME" envDefault:".mlpanel"`
	// Mlflow is the mlflow executable; by default the repository's .venv's
	// (DefaultMlflow).
	Mlflow string `env:"MLPANEL_MLFLOW" conf:"computed"`
}

// Runtime is what runs the project and model servers (MLPANEL_RUNTIME):
// child processes of the services (RuntimeLocal), or a cluster engine.
type Runtime string

const (
	RuntimeLocal      Runtime = "local"
	RuntimeNomad      Runtime = "nomad"
	RuntimeKubernetes Runtime = "kubernetes"
)

// Runtimes are every runtime MLPANEL_RUNTIME may name.
var Runtimes = []Runtime{RuntimeLocal, RuntimeNomad, RuntimeKubernetes}

// ParseRuntime checks a value of MLPANEL_RUNTIME.
func ParseRuntime(v string) (Runtime, error) {
	for _, r := range Runtimes {
		if Runtime(strings.TrimSpace(v)) == r {
			return r, nil
		}
	}
	return "", fmt.Errorf("runtime %q: use local (child processes on this machine), nomad or kubernetes", v)
}

// RuntimeChoice is the MLPANEL_RUNTIME setting, shared by the services
// that run servers (projects, deployer).
type RuntimeChoice struct {
	// Runtime runs the tracking and model servers: local child processes,
	// or Nomad jobs or Kubernetes Deployments.
	Runtime Runtime `env:"MLPANEL_RUNTIME" envDefault:"local"`
}

// Resolve fills what Load leaves to the code: an absolute Home and the
// default mlflow.
func (r *Runner) Resolve() error {
	home, err := filepath.Abs(r.Home)
	if err != nil {
		return fmt.Errorf("MLPANEL_HOME=%q: %w", r.Home, err)
	}
	r.Home = home
	if r.Mlflow == "" {
		r.Mlflow = DefaultMlflow()
	}
	return nil
}

// Check stops a start when the mlflow executable is missing (CheckMlflow).
func (r Runner) Check() error { return CheckMlflow(r.Mlflow) }
