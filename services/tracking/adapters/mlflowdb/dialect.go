package mlflowdb

import (
	"context"
	"database/sql"
	"math"
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
	// binary: string comparisons go through BINARY as MLflow writes them
	// for MySQL, whose default collations ignore case (compare).
	binary bool
	// quoteKey: the column name key is a reserved word (MySQL), quoted
	// where it stands unqualified.
	quoteKey bool
}

var (
	sqlite = &dialect{name: "sqlite", ilike: func(col string) string { return "lower(" + col + ") LIKE lower(?)" },
		noLimit: -1, insertOrder: "rowid"}
	postgres = &dialect{name: "postgresql", numbered: true, ilike: func(col string) string { return col + " ILIKE ?" },
		noLimit: nil, insertOrder: "ctid", planned: true}
	// MySQL/MariaDB: SQLAlchemy renders ILIKE as on SQLite; LIMIT has no
	// "none", so the largest count stands for it; InnoDB keeps rows in
	// primary key order, (key, run_uuid) for the metric, param and tag
	// tables, which is the order MLflow reads a run's rows back in.
	mysql = &dialect{name: "mysql", ilike: func(col string) string { return "lower(" + col + ") LIKE lower(?)" },
		noLimit: int64(math.MaxInt64), insertOrder: "key", planned: true, binary: true, quoteKey: true}
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

// rebind numbers the ? placeholders for PostgreSQL and quotes the
// column key for MySQL. The SQL of this package has no ? and no key in
// literals: values are always arguments.
func (d *dialect) rebind(q string) string {
	if d.quoteKey {
		return quoteKey(q)
	}
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

// quoteKey writes `key` for each bare word key of q: a column of the
// metric, param and tag tables that MySQL reserves. A qualified t.key
// needs no quotes (MySQL reads the word after a dot as a name).
func quoteKey(q string) string {
	if !strings.Contains(q, "key") {
		return q
	}
	ident := func(b byte) bool {
		return b == '_' || b == '`' || b == '.' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
	}
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if strings.HasPrefix(q[i:], "key") && (i == 0 || !ident(q[i-1])) && (i+3 == len(q) || !ident(q[i+3])) {
			b.WriteString("`key`")
			i += 2
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
