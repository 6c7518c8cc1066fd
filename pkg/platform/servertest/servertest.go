// Package servertest holds what the test harnesses that run real servers
// (pgtest, mysqltest, nomadtest, kubetest) share: a free loopback port,
// and a throw-away folder a server may own when the tests run as root.
package servertest

import (
	"net"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"testing"
)

// FreePort is a TCP port on 127.0.0.1 nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Dir makes a folder for one test's server, removed after the test.
// Database servers refuse to run as root: when the tests do, the folder
// is given to account (the system user Debian's package creates), and
// cred is that user, for the server's commands to run as; nil otherwise.
// install says how to get the package, for the failure message.
func Dir(t testing.TB, prefix, account, install string) (dir string, cred *syscall.Credential) {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() != 0 {
		return dir, nil
	}
	u, err := user.Lookup(account)
	if err != nil {
		t.Fatalf("running as root, the server needs the %s user of Debian's package (%v): %s", account, err, install)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}
