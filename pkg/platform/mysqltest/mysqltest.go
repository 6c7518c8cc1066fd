// Package mysqltest starts a throwaway MariaDB server for tests, from
// Debian's mariadb-server package: mariadb-install-db into a temporary
// folder, mariadbd on a loopback port, killed and removed when the test
// ends. Tests that need it fail (never skip) when it is not installed,
// and say how to install it.
package mysqltest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/servertest"
)

// Install is how to get what Start needs.
const Install = "apt-get update && apt-get install -y mariadb-server (Debian's package; .ci/run installs it)"

// User and Password are the account Start creates, with every privilege.
const (
	User     = "mlpanel"
	Password = "mlpanel-test"
)

// find looks a program up on the PATH and in the sbin folders, where
// Debian puts mariadbd but a non-root PATH often does not look.
func find(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("MariaDB's %s is not installed: %s", name, Install)
}

// Start runs a MariaDB server for the test and returns its address as
// MLPANEL_PROJECT_MYSQL_URL takes it: mysql://mlpanel:<password>@127.0.0.1:<port>/
// (an account that may create and drop databases).
func Start(t testing.TB) string {
	t.Helper()
	server, err := find("mariadbd")
	if err != nil {
		t.Fatal(err)
	}
	installDB, err := find("mariadb-install-db")
	if err != nil {
		t.Fatal(err)
	}
	// mariadbd refuses to run as root: as root, it runs as the mysql
	// user the package creates (it switches itself with --user).
	dir, cred := servertest.Dir(t, "mlpanel-mysql-", "mysql", Install)
	runAs := []string{}
	if cred != nil {
		runAs = []string{"--user=mysql"}
	}
	data := filepath.Join(dir, "data")
	// --no-defaults: /etc/mysql's settings (the system server's socket,
	// pid file and log paths) must not leak into a test server.
	args := append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve"}, runAs...)
	if out, err := exec.Command(installDB, args...).CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	// The test account is made at start, so no client is needed here.
	initSQL := filepath.Join(dir, "init.sql")
	stmt := fmt.Sprintf("CREATE USER IF NOT EXISTS '%[1]s'@'127.0.0.1' IDENTIFIED BY '%[2]s';\nGRANT ALL PRIVILEGES ON *.* TO '%[1]s'@'127.0.0.1' WITH GRANT OPTION;\n", User, Password)
	if err := os.WriteFile(initSQL, []byte(stmt), 0o644); err != nil {
		t.Fatal(err)
	}
	port := servertest.FreePort(t)
	logFile := filepath.Join(dir, "server.log")
	// Durability off (no fsync, no doublewrite, no binary log): a test
	// server's data need not survive a crash. utf8mb4 with its default
	// case-insensitive collation is what Debian's server is configured
	// with, so string comparisons behave as on a real install.
	cmd := exec.Command(server, append([]string{"--no-defaults", "--datadir=" + data,
		"--socket=" + filepath.Join(dir, "mysqld.sock"), "--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--log-error=" + logFile, "--bind-address=127.0.0.1", "--port=" + strconv.Itoa(port),
		"--skip-name-resolve", "--init-file=" + initSQL,
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
		"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--skip-log-bin",
		"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M", "--max-connections=200",
		"--skip-innodb-adaptive-hash-index"}, runAs...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mariadbd: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// The data is thrown away: no clean shutdown needed.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, _ := os.ReadFile(logFile); bytes.Contains(b, []byte("ready for connections")) {
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logFile)
			t.Fatalf("mariadbd exited: %v\n%s", waitErr, b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logFile)
			t.Fatalf("mariadbd did not become ready in 60s:\n%s", b)
		}
	}
	return fmt.Sprintf("mysql://%s:%s@127.0.0.1:%d/", User, Password, port)
}
