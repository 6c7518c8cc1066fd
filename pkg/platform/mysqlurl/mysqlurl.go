// Package mysqlurl reads MLPANEL_PROJECT_MYSQL_URL, the MySQL or MariaDB
// server that holds the databases of projects with backend mysql, into
// the two addresses made from it: the Go driver's (the projects service
// creates and drops databases, the tracking service reads them) and
// SQLAlchemy's (MLflow's server writes them, through PyMySQL). One
// parser, so the three agree on which server and account they use.
package mysqlurl

import (
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Form is what the setting looks like, for messages.
const Form = "mysql://user:password@host:3306/ (an account that may create and drop databases; ?unix_socket=/path/mysqld.sock for a local socket)"

// DatabaseOptions are the CREATE DATABASE options of a project's
// database. utf8mb4 holds every string MLflow stores; the binary
// collation makes names that differ in case distinct, as on SQLite and
// PostgreSQL: under MySQL's default case-insensitive collations MLflow
// cannot keep a param "lr" beside "LR" in one run, nor datasets "iris"
// and "Iris" of one digest (their primary keys collide).
const DatabaseOptions = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"

type server struct {
	user, password string
	host, port     string // tcp
	socket         string // unix_socket instead of host
}

func parse(s string) (server, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "mysql" && u.Scheme != "mariadb") || u.User == nil || u.User.Username() == "" {
		return server{}, fmt.Errorf("MLPANEL_PROJECT_MYSQL_URL must be %s", Form)
	}
	if u.Path != "" && u.Path != "/" {
		return server{}, fmt.Errorf("MLPANEL_PROJECT_MYSQL_URL names the server only, not a database (%q): each project gets its own; use %s", u.Path, Form)
	}
	for k := range u.Query() {
		if k != "unix_socket" {
			return server{}, fmt.Errorf("MLPANEL_PROJECT_MYSQL_URL: parameter %q is not supported (only unix_socket); use %s", k, Form)
		}
	}
	sv := server{user: u.User.Username(), socket: u.Query().Get("unix_socket"), host: u.Hostname(), port: u.Port()}
	sv.password, _ = u.User.Password()
	if sv.socket == "" && sv.host == "" {
		return server{}, fmt.Errorf("MLPANEL_PROJECT_MYSQL_URL has no host: use %s", Form)
	}
	if sv.port == "" {
		sv.port = "3306"
	}
	return sv, nil
}

// Check tells whether s is a usable MLPANEL_PROJECT_MYSQL_URL.
func Check(s string) error {
	_, err := parse(s)
	return err
}

// DSN is the Go driver's address of database name (empty: no database
// selected) on the server s.
func DSN(s, name string) (string, error) {
	sv, err := parse(s)
	if err != nil {
		return "", err
	}
	c := mysql.NewConfig()
	c.User, c.Passwd, c.DBName = sv.user, sv.password, name
	if sv.socket != "" {
		c.Net, c.Addr = "unix", sv.socket
	} else {
		c.Net, c.Addr = "tcp", net.JoinHostPort(sv.host, sv.port)
	}
	c.Timeout = 10 * time.Second
	// utf8mb4: what MLflow's PyMySQL connection uses, so strings compare
	// the same in both.
	c.Params = map[string]string{"charset": "utf8mb4"}
	return c.FormatDSN(), nil
}

// SQLAlchemyURL is MLflow's backend store URI for database name on the
// server s, with PyMySQL named as the driver (python/requirements.txt
// pins it; SQLAlchemy's default for mysql:// is mysqlclient, which needs
// a C library).
func SQLAlchemyURL(s, name string) (string, error) {
	sv, err := parse(s)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "mysql+pymysql", User: url.UserPassword(sv.user, sv.password), Path: "/" + name}
	q := url.Values{"charset": {"utf8mb4"}}
	if sv.socket != "" {
		u.Host = "localhost"
		q.Set("unix_socket", sv.socket)
	} else {
		u.Host = net.JoinHostPort(sv.host, sv.port)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
