// Package pgtest starts a throwaway PostgreSQL server for tests, from
// Debian's postgresql package: initdb into a temporary folder, the server
// on a loopback port, stopped and removed when the test ends. Tests that
// need PostgreSQL fail (never skip) when it is not installed, and say how
// to install it.
package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/platform/servertest"
)

// Install is how to get what Start needs.
const Install = "apt-get update && apt-get install -y postgresql (Debian's package; .ci/run installs it)"

// binDir finds initdb and pg_ctl: Debian keeps them under
// /usr/lib/postgresql/<version>/bin, off the PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("PostgreSQL's initdb and pg_ctl are not installed: %s", Install)
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start runs a PostgreSQL server for the test and returns its URL
// (superuser mlpanel, no password, database postgres).
func Start(t testing.TB) string {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL refuses to run as root: as root, run it as the postgres
	// user the package creates.
	dir, cred := servertest.Dir(t, "mlpanel-pg-", "postgres", Install)
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	data := filepath.Join(dir, "data")
	run("initdb", "-D", data, "-U", "mlpanel", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
	port := servertest.FreePort(t)
	// fsync off: a test server's data need not survive a crash.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", port, dir)
	run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "start")
	t.Cleanup(func() {
		cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		_ = cmd.Run()
	})
	return fmt.Sprintf("postgresql://mlpanel@127.0.0.1:%d/postgres?sslmode=disable", port)
}
