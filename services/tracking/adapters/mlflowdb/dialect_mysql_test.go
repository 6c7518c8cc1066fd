package mlflowdb

import (
	"reflect"
	"testing"
)

// MySQL reserves key: the bare column is quoted, a qualified one, a
// longer word and the other dialects are left alone.
func TestMySQLQuotesTheKeyColumnOnly(t *testing.T) {
	q := "SELECT run_uuid, key, value FROM params WHERE key = ? AND t.key = ? AND monkey_key = 1 AND keys = 2 ORDER BY run_uuid, key"
	want := "SELECT run_uuid, `key`, value FROM params WHERE `key` = ? AND t.key = ? AND monkey_key = 1 AND keys = 2 ORDER BY run_uuid, `key`"
	if got := mysql.rebind(q); got != want {
		t.Errorf("mysql:\n got %s\nwant %s", got, want)
	}
	if got := sqlite.rebind(q); got != q {
		t.Errorf("sqlite changed the SQL: %s", got)
	}
}

// String comparisons on MySQL are MLflow's: =, != and LIKE twice (the
// collation's, then BINARY's), IN through BINARY; numbers and ILIKE as
// everywhere.
func TestMySQLComparesStringsWithCase(t *testing.T) {
	for _, c := range []struct {
		op   string
		v    any
		sql  string
		args []any
	}{
		{"=", "CNN", "(p.value = ? AND BINARY p.value = ?)", []any{"CNN", "CNN"}},
		{"!=", "CNN", "(p.value != ? OR BINARY p.value != ?)", []any{"CNN", "CNN"}},
		{"LIKE", "C%", "(p.value LIKE ? AND BINARY p.value LIKE ?)", []any{"C%", "C%"}},
		{"ILIKE", "c%", "lower(p.value) LIKE lower(?)", []any{"c%"}},
		{"NOT IN", []string{"a", "B"}, "(BINARY p.value NOT IN (?, ?))", []any{"a", "B"}},
		{">", 0.5, "p.value > ?", []any{0.5}},
	} {
		q := &query{d: mysql}
		q.compare("p.value", c.op, c.v)
		if q.sql.String() != c.sql || !reflect.DeepEqual(q.args, c.args) {
			t.Errorf("%s %v: %s %v, want %s %v", c.op, c.v, q.sql.String(), q.args, c.sql, c.args)
		}
	}
}
