package mlflowdb

import (
	"fmt"
	"strings"
)

// query is SQL text with its arguments, in a dialect.
type query struct {
	d    *dialect
	sql  strings.Builder
	args []any
}

func (q *query) add(s string, args ...any) {
	q.sql.WriteString(s)
	q.args = append(q.args, args...)
}

// compare writes "<col> <op> ?" the way SQLAlchemy renders MLflow's
// comparison (LIKE is case-sensitive on SQLite too, because MLflow sets
// PRAGMA case_sensitive_like; ILIKE is the dialect's).
func (q *query) compare(col, op string, v any) {
	if q.d.binary && q.binaryCompare(col, op, v) {
		return
	}
	switch op {
	case "LIKE":
		q.add(col+" LIKE ?", v)
	case "ILIKE":
		q.add(q.d.ilike(col), v)
	case "IN", "NOT IN":
		list := v.([]string)
		if op == "NOT IN" {
			q.add("(" + col + " NOT IN (")
		} else {
			q.add("(" + col + " IN (")
		}
		for i, s := range list {
			if i > 0 {
				q.add(", ")
			}
			q.add("?", s)
		}
		q.add("))")
	default:
		q.add(col+" "+op+" ?", v)
	}
}

// binaryCompare writes a comparison of a string column as MLflow's
// SearchUtils.get_sql_comparison_func does for MySQL: =, != and LIKE
// first as the collation has it (which can use an index), then again
// through BINARY, so that case counts; IN and NOT IN through BINARY
// alone. Other operators (ILIKE, < on strings) and numbers are the
// common SQL. false: not one of these.
func (q *query) binaryCompare(col, op string, v any) bool {
	switch v := v.(type) {
	case string:
		switch op {
		case "=":
			q.add("("+col+" = ? AND BINARY "+col+" = ?)", v, v)
		case "!=":
			q.add("("+col+" != ? OR BINARY "+col+" != ?)", v, v)
		case "LIKE":
			q.add("("+col+" LIKE ? AND BINARY "+col+" LIKE ?)", v, v)
		default:
			return false
		}
		return true
	case []string:
		if op != "IN" && op != "NOT IN" {
			return false
		}
		q.add("(BINARY " + col + " " + op + " (")
		for i, s := range v {
			if i > 0 {
				q.add(", ")
			}
			q.add("?", s)
		}
		q.add("))")
		return true
	}
	return false
}

// filterTables are the tables of the metric, param and tag clauses.
var filterTables = map[string]string{"metric": "latest_metrics", "parameter": "params", "tag": "tags"}

// joinsFilter reports whether clause c is a value comparison that where
// reads through an inner join of alias f<i>.
func joinsFilter(c clause) bool {
	return filterTables[c.kind] != "" && c.op != "IS NULL" && c.op != "IS NOT NULL"
}

// filterJoins writes the joins of the value comparisons on metrics,
// params and tags: "JOIN latest_metrics f0 ON f0.run_uuid = runs.run_uuid
// AND f0.key = ?". MLflow joins these too; a join yields the rows its
// DISTINCT query does because (key, run_uuid) is each table's primary
// key, so a run joins at most one row per clause. Joined, the search can
// start from the clause's (key, run_uuid) index and look the run up by
// id, instead of scanning runs and probing a list per clause (measured
// at 100,000 runs: about half the time of IN (subquery)).
func (q *query) filterJoins(filters []clause) {
	for i, c := range filters {
		if joinsFilter(c) {
			a := fmt.Sprintf("f%d", i)
			q.add(" JOIN "+filterTables[c.kind]+" "+a+" ON "+a+".run_uuid = runs.run_uuid AND "+a+".key = ?", c.key)
		}
	}
}

// from writes the FROM clause and the joins of the value comparisons.
// drive >= 0 is the filter clause whose table SQLite reads first, whole
// and in storage order (chooseDriver says when that is cheaper than its
// index); -1 leaves the order to the planner.
func (q *query) from(filters []clause, drive int) {
	if drive < 0 {
		q.add(" FROM runs")
		q.filterJoins(filters)
		return
	}
	// NOT INDEXED and CROSS JOIN are SQLite's way to fix the plan: read
	// the driving table in rowid order, probe the other clauses' (key,
	// run_uuid) keys, which drop most rows, and only then look the
	// remaining runs up by primary key.
	d := fmt.Sprintf("f%d", drive)
	q.add(" FROM " + filterTables[filters[drive].kind] + " " + d + " NOT INDEXED")
	for i, c := range filters {
		if joinsFilter(c) && i != drive {
			a := fmt.Sprintf("f%d", i)
			q.add(" CROSS JOIN "+filterTables[c.kind]+" "+a+" ON "+a+".run_uuid = "+d+".run_uuid AND "+a+".key = ?", c.key)
		}
	}
	q.add(" CROSS JOIN runs ON runs.run_uuid = "+d+".run_uuid AND "+d+".key = ?", filters[drive].key)
}

// where writes the conditions of MLflow's _search_runs: the experiments,
// the lifecycle stages and every filter clause, after filterJoins wrote
// the joins of the value comparisons. Other joins MLflow makes for a
// filter become IN (subquery): the same rows, since its query is
// DISTINCT, and SQLite reads each subquery once through its key index.
func (q *query) where(expIDs []int64, stages []string, filters []clause) {
	if expIDs == nil {
		q.add(" WHERE runs.experiment_id IN (SELECT experiment_id FROM experiments WHERE lifecycle_stage = 'active')")
	} else {
		q.add(" WHERE runs.experiment_id IN "+placeholders(len(expIDs)), int64Args(expIDs)...)
	}
	q.add(" AND runs.lifecycle_stage IN (")
	for i, s := range stages {
		if i > 0 {
			q.add(", ")
		}
		q.add("?", s)
	}
	q.add(")")
	for i, c := range filters {
		q.add(" AND ")
		if joinsFilter(c) {
			col := fmt.Sprintf("f%d.value", i)
			if c.kind == "metric" {
				// NaN is stored as 0 with is_nan: it satisfies only "!=".
				q.add("(")
				q.compare(col, c.op, c.value)
				if c.op == "!=" {
					q.add(fmt.Sprintf(" OR f%d.is_nan = TRUE)", i))
				} else {
					q.add(fmt.Sprintf(" AND f%d.is_nan = FALSE)", i))
				}
			} else {
				q.compare(col, c.op, c.value)
			}
			continue
		}
		switch c.kind {
		case "attribute":
			if c.key == "run_name" {
				// MLflow reads run_name from the mlflow.runName tag.
				q.add("runs.run_uuid IN (SELECT t.run_uuid FROM tags t WHERE t.key = ? AND ", "mlflow.runName")
				q.compare("t.value", c.op, c.value)
				q.add(")")
				continue
			}
			col, ok := stringAttributes[c.key]
			if !ok {
				col = numericAttributes[c.key]
			}
			q.compare("runs."+col, c.op, c.value)
		case "metric", "parameter", "tag":
			table := map[string]string{"metric": "latest_metrics", "parameter": "params", "tag": "tags"}[c.kind]
			switch c.op {
			case "IS NULL":
				q.add("runs.run_uuid NOT IN (SELECT x.run_uuid FROM "+table+" x WHERE x.key = ?)", c.key)
				continue
			case "IS NOT NULL":
				q.add("runs.run_uuid IN (SELECT x.run_uuid FROM "+table+" x WHERE x.key = ?)", c.key)
				continue
			}
			panic("mlflowdb: a value comparison on " + table + " is a join (filterJoins)")
		case "dataset":
			q.add("runs.run_uuid IN (SELECT i.destination_id FROM datasets d JOIN inputs i ON i.source_id = d.dataset_uuid")
			if c.key == "context" {
				q.add(" JOIN input_tags it ON it.input_uuid = i.input_uuid AND it.name = ? AND ", "mlflow.data.context")
				q.compare("it.value", c.op, c.value)
				q.add(")")
			} else {
				q.add(" WHERE ")
				q.compare("d."+c.key, c.op, c.value)
				q.add(")")
			}
		default:
			panic(fmt.Sprintf("mlflowdb: clause kind %q", c.kind))
		}
	}
}

// orderBy writes MLflow's ORDER BY: per clause a presence rank (NaN after
// values, missing after NaN for metrics), then the value, then start_time
// DESC unless ordered by it, and run_uuid last.
func (q *query) joinsAndOrder(order []orderClause) (joins, orderSQL string, args []any) {
	var j, o strings.Builder
	var jargs []any
	start := false
	for i, c := range order {
		var val string
		rank := ""
		switch c.kind {
		case "attribute":
			val = "runs." + orderAttributes[c.key]
			if c.key == "start_time" {
				start = true
			}
			rank = fmt.Sprintf("CASE WHEN %s IS NULL THEN 1 ELSE 0 END", val)
		default:
			table := map[string]string{"metric": "latest_metrics", "parameter": "params", "tag": "tags"}[c.kind]
			alias := fmt.Sprintf("o%d", i)
			cols := alias + ".value"
			if c.kind == "metric" {
				cols += ", " + alias + ".is_nan"
			}
			fmt.Fprintf(&j, " LEFT OUTER JOIN (SELECT run_uuid, %s FROM %s %s WHERE %s.key = ?) AS %s ON runs.run_uuid = %s.run_uuid",
				strings.ReplaceAll(cols, alias+".", ""), table, alias+"x", alias+"x", alias, alias)
			jargs = append(jargs, c.key)
			val = alias + ".value"
			if c.kind == "metric" {
				rank = fmt.Sprintf("CASE WHEN %s.is_nan = TRUE THEN 1 WHEN %s IS NULL THEN 2 ELSE 0 END", alias, val)
			} else {
				rank = fmt.Sprintf("CASE WHEN %s IS NULL THEN 1 ELSE 0 END", val)
			}
		}
		dir := ""
		if !c.asc {
			dir = " DESC"
		}
		fmt.Fprintf(&o, "%s, %s%s, ", rank, val, dir)
	}
	if !start {
		o.WriteString("runs.start_time DESC, ")
	}
	o.WriteString("runs.run_uuid")
	return j.String(), o.String(), jargs
}
