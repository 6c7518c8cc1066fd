// Package conf reads mlpanel settings from MLPANEL_* environment variables.
// Every setting has a default, so an empty environment runs the embedded
// default; a malformed value is an error at start, never a silent default.
package conf

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Prefix starts every setting's name.
const Prefix = "MLPANEL_"

// Reader collects the first malformed value, so a service can read all its
// settings and check once.
type Reader struct{ err error }

func (r *Reader) lookup(name string) (string, bool) {
	v, ok := os.LookupEnv(Prefix + name)
	return v, ok && v != ""
}

// String returns MLPANEL_<name> or def.
func (r *Reader) String(name, def string) string {
	if v, ok := r.lookup(name); ok {
		return v
	}
	return def
}

// Int returns MLPANEL_<name> as an integer or def.
func (r *Reader) Int(name string, def int) int {
	v, ok := r.lookup(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%s%s=%q: want an integer", Prefix, name, v)
	}
	if err != nil {
		return def
	}
	return n
}

// Bool returns MLPANEL_<name> as a boolean (true/false/1/0) or def.
func (r *Reader) Bool(name string, def bool) bool {
	v, ok := r.lookup(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("%s%s=%q: want true or false", Prefix, name, v)
		}
		return def
	}
	return b
}

// Duration returns MLPANEL_<name> as a Go duration ("30s") or def.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v, ok := r.lookup(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("%s%s=%q: want a duration such as 30s", Prefix, name, v)
		}
		return def
	}
	return d
}

// Fail records an error found while checking a value.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Err is the first malformed setting, if any.
func (r *Reader) Err() error { return r.err }

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
