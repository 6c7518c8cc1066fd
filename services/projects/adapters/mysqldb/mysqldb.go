// Package mysqldb creates and drops the MySQL/MariaDB databases of
// projects with backend mysql, on the server of MLPANEL_PROJECT_MYSQL_URL.
package mysqldb

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers "mysql" with database/sql

	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
	"github.com/mlpanel/mlpanel/pkg/platform/mysqlurl"
)

// Databases creates and drops project databases on one server.
type Databases struct {
	URL string // MLPANEL_PROJECT_MYSQL_URL
}

// names are what databaseName makes; anything else is refused rather
// than quoted, so no name can break out of the statement.
var names = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

func (d Databases) exec(ctx context.Context, stmt, name string) error {
	if !names.MatchString(name) {
		return fmt.Errorf("database name %q is not one the panel makes", name)
	}
	dsn, err := mysqlurl.DSN(d.URL, "")
	if err != nil {
		return err
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, fmt.Sprintf(stmt, "`"+name+"`"))
	return err
}

// Create makes an empty database (mysqlurl.DatabaseOptions: utf8mb4,
// case counts); MLflow makes its schema on first start.
func (d Databases) Create(ctx context.Context, name string) error {
	if err := d.exec(ctx, "CREATE DATABASE %s "+mysqlurl.DatabaseOptions, name); err != nil {
		return fmt.Errorf("CREATE DATABASE %s on MLPANEL_PROJECT_MYSQL_URL's server: %w", name, err)
	}
	return nil
}

// Drop removes the database. MySQL waits for the metadata locks of open
// transactions on its tables; the tracking service's reads hold none
// between queries.
func (d Databases) Drop(ctx context.Context, name string) error {
	if err := d.exec(ctx, "DROP DATABASE IF EXISTS %s", name); err != nil {
		return fmt.Errorf("DROP DATABASE %s on MLPANEL_PROJECT_MYSQL_URL's server: %w", name, err)
	}
	return nil
}

// Index adds the panel's indexes (mlflowschema.Indexes) to the project
// database name before its server starts; nothing while MLflow has not
// made its tables there (before the first start).
func (d Databases) Index(ctx context.Context, name string) error {
	if !names.MatchString(name) {
		return fmt.Errorf("database name %q is not one the panel makes", name)
	}
	dsn, err := mysqlurl.DSN(d.URL, name)
	if err != nil {
		return err
	}
	if err := mlflowschema.EnsureIndexesAt(ctx, "mysql", dsn, mlflowschema.MySQL); err != nil {
		return fmt.Errorf("database %s: %w", name, err)
	}
	return nil
}
