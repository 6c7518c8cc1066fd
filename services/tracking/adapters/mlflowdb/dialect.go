package mlflowdb

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// dialect holds what differs between the SQL backends MLflow's schema
// lives on. Everything else in this package is one SQL text for all.
type dialect struct {
	name string
	// numbered: placeholders are $1, $2, ... instead of ?.
	numbered bool
	// ilike is how SQLAlchemy renders MLflow's ILIKE: lower() LIKE
	// lower() on SQLite, the ILIKE operator on PostgreSQL.
	ilike func(col string) string
	// noLimit is the LIMIT argument that means no limit.
	noLimit any
	// insertOrder orders the rows of one run as MLflow reads them back
	// (its queries have no ORDER BY: storage order).
	insertOrder string
	// planned: the database keeps statistics and plans joins itself;
	// SQLite gets its plan from chooseDriver.
	planned bool
}

var (
	sqlite = &dialect{name: "sqlite", ilike: func(col string) string { return "lower(" + col + ") LIKE lower(?)" },
		noLimit: -1, insertOrder: "rowid"}
	postgres = &dialect{name: "postgresql", numbered: true, ilike: func(col string) string { return col + " ILIKE ?" },
		noLimit: nil, insertOrder: "ctid", planned: true}
)

// conn is a pool of one project's database with its dialect: the SQL of
// this package is written with ? placeholders and rebound here.
type conn struct {
	*sql.DB
	*dialect
}

func (c *conn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return c.DB.QueryContext(ctx, c.rebind(q), args...)
}

func (c *conn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return c.DB.QueryRowContext(ctx, c.rebind(q), args...)
}

// query starts a query in c's dialect.
func (c *conn) query() *query { return &query{d: c.dialect} }

// limit is the LIMIT argument of a window limit (0 or less: no limit).
func (c *conn) limit(n int) any {
	if n <= 0 {
		return c.noLimit
	}
	return n
}

// rebind numbers the ? placeholders for PostgreSQL. The SQL of this
// package has no ? in literals: values are always arguments.
func (d *dialect) rebind(q string) string {
	if !d.numbered || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
