// Package pgdb creates and drops the PostgreSQL databases of projects
// with backend postgresql, on the server of MLPANEL_PROJECT_DB_URL.
package pgdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" with database/sql

	"github.com/mlpanel/mlpanel/pkg/platform/mlflowschema"
)

// Databases creates and drops project databases on one server.
type Databases struct {
	URL string // a role that may create databases, connected to any database of the server
}

// DatabaseURL is the address of database name on the server at server,
// as MLflow's backend store: psycopg2 named as the driver, because the
// SQLAlchemy under MLflow otherwise picks psycopg 3, which the project's
// virtualenv does not install (python/requirements.txt pins psycopg2).
func DatabaseURL(server, name string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgresql" && u.Scheme != "postgres") || u.Host == "" {
		return "", fmt.Errorf("MLPANEL_PROJECT_DB_URL must be postgresql://user:password@host:port/database (any database the user may connect to)")
	}
	u.Scheme = "postgresql+psycopg2"
	u.Path = "/" + name
	return u.String(), nil
}

// CheckURL tells whether s is a usable MLPANEL_PROJECT_DB_URL.
func CheckURL(s string) error {
	_, err := DatabaseURL(s, "postgres")
	return err
}

func (d Databases) exec(ctx context.Context, stmt string) error {
	db, err := sql.Open("pgx", d.URL)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

// Create makes an empty database; MLflow makes its schema on first start.
func (d Databases) Create(ctx context.Context, name string) error {
	if err := d.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("CREATE DATABASE %s on MLPANEL_PROJECT_DB_URL's server: %w", name, err)
	}
	return nil
}

// Drop removes the database; connections still open to it (the tracking
// service's reads) are ended.
func (d Databases) Drop(ctx context.Context, name string) error {
	if err := d.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("DROP DATABASE %s on MLPANEL_PROJECT_DB_URL's server: %w", name, err)
	}
	return nil
}

// Index adds the panel's indexes (mlflowschema.Indexes) to the project
// database name before its server starts; nothing while MLflow has not
// made its tables there (before the first start).
func (d Databases) Index(ctx context.Context, name string) error {
	u, err := url.Parse(d.URL)
	if err != nil {
		return fmt.Errorf("MLPANEL_PROJECT_DB_URL: %w", err)
	}
	u.Path = "/" + name
	if err := mlflowschema.EnsureIndexesAt(ctx, "pgx", u.String(), mlflowschema.Postgres); err != nil {
		return fmt.Errorf("database %s: %w", name, err)
	}
	return nil
}
