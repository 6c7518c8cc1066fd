package mlflowdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/mlpanel/mlpanel/services/tracking/app"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// This file answers searches across projects (app.CrossReads): each
// project's matching runs as an ordered stream of ids with their sort
// keys, so the caller merges many projects' streams into MLflow's order
// without reading every run, and a count per project for the total.

// crossPlan is one project's search made ready for SQL.
type crossPlan struct {
	db      *conn
	path    string
	filters []clause
	order   []orderClause
	stages  []string
	ids     []int64 // nil: every active experiment
	none    bool    // no experiment matches: nothing to search
}

func (r *Reader) plan(ctx context.Context, projectPath string, s app.CrossRunSearch) (crossPlan, error) {
	p := crossPlan{path: dbKey(projectPath)}
	var err error
	if neverStarted(projectPath) {
		p.none = true
		return p, nil
	}
	if p.filters, err = parseFilter(s.Filter); err != nil {
		return p, ErrFallback
	}
	if p.order, err = parseOrder(s.OrderBy); err != nil {
		return p, ErrFallback
	}
	if p.stages, err = stages(s.View); err != nil {
		return p, err
	}
	if p.db, err = r.db(ctx, p.path); err != nil {
		return p, err
	}
	switch {
	case s.ExperimentID != "":
		n, err := strconv.ParseInt(s.ExperimentID, 10, 64)
		if err != nil {
			return p, ErrFallback
		}
		p.ids = []int64{n}
	case s.ExperimentName != "":
		exps, err := r.activeExperiments(ctx, p.db, p.path, s.ExperimentName)
		if err != nil {
			return p, err
		}
		for _, e := range exps {
			n, _ := strconv.ParseInt(e.ID, 10, 64)
			p.ids = append(p.ids, n)
		}
		p.none = len(p.ids) == 0
	}
	return p, nil
}

// CheckFilter parses a run filter with the parser the reads use and
// returns MLflow's refusal where MLflow's grammar certainly refuses it;
// nil for a filter it accepts or leaves to MLflow's server.
func (r *Reader) CheckFilter(filter string) error {
	_, err := parseFilter(filter)
	var g *grammarError
	if errors.As(err, &g) {
		return g
	}
	return nil
}

// ActiveExperiments lists the active experiments whose name is name, or
// matches it as a LIKE pattern when it holds '%' (case-sensitive, as
// MLflow's LIKE on SQLite); every active one when name is "".
func (r *Reader) ActiveExperiments(ctx context.Context, projectPath, name string) ([]app.ExperimentRef, error) {
	path := dbKey(projectPath)
	if neverStarted(projectPath) {
		return nil, nil
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return nil, err
	}
	return r.activeExperiments(ctx, db, path, name)
}

func (r *Reader) activeExperiments(ctx context.Context, db *conn, path, name string) ([]app.ExperimentRef, error) {
	q := db.query()
	q.add("SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'")
	switch {
	case name == "":
	case strings.Contains(name, "%"):
		q.add(" AND name LIKE ?", name)
	default:
		q.add(" AND name = ?", name)
	}
	q.add(" ORDER BY experiment_id")
	rows, err := db.QueryContext(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, r.queryErr(ctx, path, "listing experiments", err)
	}
	defer rows.Close()
	var out []app.ExperimentRef
	for rows.Next() {
		var id int64
		var n string
		if err := rows.Scan(&id, &n); err != nil {
			return nil, r.queryErr(ctx, path, "listing experiments", err)
		}
		out = append(out, app.ExperimentRef{ID: strconv.FormatInt(id, 10), Name: n})
	}
	return out, r.queryErr(ctx, path, "listing experiments", rows.Err())
}

// neverStarted reports whether a project's folder exists without its
// database: MLflow creates mlflow.db when the project's server first
// starts, so until then the project has no runs and no models (and a
// search must not fall back to waking it to hear that).
func neverStarted(projectPath string) bool {
	if projectPath == "" {
		return false
	}
	if _, err := os.Stat(projectPath); err != nil {
		return false
	}
	_, err := os.Stat(dbKey(projectPath))
	return errors.Is(err, fs.ErrNotExist)
}

// keyExprs are the SQL expressions of the sort keys, in the order of the
// ORDER BY that SearchRuns writes (joinsAndOrder): per clause a presence
// rank and the value, then start_time DESC unless ordered by it, then
// run_uuid.
type keyExpr struct {
	sql  string
	desc bool
}

// An order clause on the key of a value comparison of the filter reads
// the row that comparison joined (its inner join guarantees the row, and
// (key, run_uuid) is the table's primary key, so it is the same row the
// outer join would find) instead of joining the table once more.
func orderKeys(order []orderClause, filters []clause) (joins string, args []any, keys []keyExpr) {
	var j strings.Builder
	start := false
	joined := map[[2]string]string{}
	for i, c := range filters {
		if joinsFilter(c) {
			if _, dup := joined[[2]string{c.kind, c.key}]; !dup {
				joined[[2]string{c.kind, c.key}] = fmt.Sprintf("f%d", i)
			}
		}
	}
	for i, c := range order {
		var val, rank string
		switch c.kind {
		case "attribute":
			val = "runs." + orderAttributes[c.key]
			if c.key == "start_time" {
				start = true
			}
			rank = fmt.Sprintf("CASE WHEN %s IS NULL THEN 1 ELSE 0 END", val)
		default:
			table := filterTables[c.kind]
			alias, ok := joined[[2]string{c.kind, c.key}]
			if !ok {
				alias = fmt.Sprintf("k%d", i)
				cols := "value"
				if c.kind == "metric" {
					cols += ", is_nan"
				}
				fmt.Fprintf(&j, " LEFT OUTER JOIN (SELECT run_uuid, %s FROM %s WHERE key = ?) AS %s ON runs.run_uuid = %s.run_uuid", cols, table, alias, alias)
				args = append(args, c.key)
			}
			val = alias + ".value"
			if c.kind == "metric" {
				rank = fmt.Sprintf("CASE WHEN %s.is_nan = 1 THEN 1 WHEN %s IS NULL THEN 2 ELSE 0 END", alias, val)
			} else {
				rank = fmt.Sprintf("CASE WHEN %s IS NULL THEN 1 ELSE 0 END", val)
			}
		}
		keys = append(keys, keyExpr{rank, false}, keyExpr{val, !c.asc})
	}
	if !start {
		keys = append(keys, keyExpr{"runs.start_time", true})
	}
	keys = append(keys, keyExpr{"runs.run_uuid", false})
	return j.String(), args, keys
}

// RunKeys streams the ids and sort keys of the matching runs in MLflow's
// order, at most limit of them (limit <= 0: all), and with count the
// number of all matching runs. The caller closes the stream.
//
// With value comparisons in the filter the count rides on the same query
// (COUNT(*) OVER (), computed before the LIMIT): their joins are the cost
// of a search, and a separate COUNT(*) did them all a second time
// (measured over 50 projects of 2,000 runs: 180 ms of CPU before, 70
// after). Without any, a separate COUNT(*) reads only runs, and the
// window would make the page sort every run instead of keeping the top
// limit (88 ms against 145).
func (r *Reader) RunKeys(ctx context.Context, projectPath string, s app.CrossRunSearch, limit int, count bool) (app.KeyStream, int, error) {
	p, err := r.plan(ctx, projectPath, s)
	if err != nil {
		return nil, 0, err
	}
	if p.none {
		return emptyStream{}, 0, nil
	}
	// The same plan as a page of GET /runs: read the table of a
	// comparison that matches a good share of it in storage order rather
	// than probing its index once per row.
	drive, err := r.driver(ctx, p)
	if err != nil {
		return nil, 0, r.queryErr(ctx, p.path, "planning the search", err)
	}
	window := false
	for _, c := range p.filters {
		window = window || count && joinsFilter(c)
	}
	total := 0
	if count && !window {
		c := p.db.query()
		c.add("SELECT COUNT(*)")
		c.from(p.filters, drive)
		c.where(p.ids, p.stages, p.filters)
		if err := p.db.QueryRowContext(ctx, c.sql.String(), c.args...).Scan(&total); err != nil {
			return nil, 0, r.queryErr(ctx, p.path, "counting runs", err)
		}
	}
	joins, jargs, keys := orderKeys(p.order, p.filters)
	q := p.db.query()
	q.add("SELECT runs.run_uuid")
	var order []string
	for _, k := range keys {
		q.add(", " + k.sql)
		if k.desc {
			order = append(order, k.sql+" DESC")
		} else {
			order = append(order, k.sql)
		}
	}
	if window {
		q.add(", COUNT(*) OVER ()")
	}
	q.from(p.filters, drive)
	q.add(joins, jargs...)
	q.where(p.ids, p.stages, p.filters)
	q.add(" ORDER BY "+strings.Join(order, ", ")+" LIMIT ?", p.db.limit(limit))
	rows, err := p.db.QueryContext(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, 0, r.queryErr(ctx, p.path, "searching runs", err)
	}
	n := 1 + len(keys)
	if window {
		n++
	}
	st := &keyStream{r: r, ctx: ctx, path: p.path, rows: rows, keys: keys, vals: make([]any, n)}
	if !window {
		return st, total, nil
	}
	// The total is on every row: read the first one now.
	k, ok, err := st.Next()
	if err != nil || !ok {
		st.Close()
		return emptyStream{}, 0, err
	}
	st.pending, st.hasPending = k, true
	total, err = sqlInt(st.vals[len(st.vals)-1])
	if err != nil {
		st.Close()
		return nil, 0, r.queryErr(ctx, p.path, "counting runs", err)
	}
	return st, total, nil
}

// sqlInt reads a COUNT as database/sql scans it into an any.
func sqlInt(v any) (int, error) {
	switch x := v.(type) {
	case int64:
		return int(x), nil
	case int32:
		return int(x), nil
	case float64:
		return int(x), nil
	}
	return 0, fmt.Errorf("a count of %T %v", v, v)
}

type emptyStream struct{}

func (emptyStream) Next() (app.RunKey, bool, error) { return app.RunKey{}, false, nil }
func (emptyStream) Close()                          {}

type keyStream struct {
	r    *Reader
	ctx  context.Context
	path string
	rows *sql.Rows
	keys []keyExpr
	vals []any
	// pending is a run read ahead (for the count on its row).
	pending    app.RunKey
	hasPending bool
}

func (s *keyStream) Next() (app.RunKey, bool, error) {
	if s.hasPending {
		s.hasPending = false
		return s.pending, true, nil
	}
	if !s.rows.Next() {
		return app.RunKey{}, false, s.r.queryErr(s.ctx, s.path, "searching runs", s.rows.Err())
	}
	ptrs := make([]any, len(s.vals))
	for i := range s.vals {
		ptrs[i] = &s.vals[i]
	}
	if err := s.rows.Scan(ptrs...); err != nil {
		return app.RunKey{}, false, s.r.queryErr(s.ctx, s.path, "searching runs", err)
	}
	k := app.RunKey{Keys: make([]app.SortKey, len(s.keys))}
	k.RunID = fmt.Sprint(sqlKey(s.vals[0], false).Str)
	for i, e := range s.keys {
		k.Keys[i] = sqlKey(s.vals[1+i], e.desc)
	}
	return k, true, nil
}

func (s *keyStream) Close() { s.rows.Close() }

// sqlKey turns a value as database/sql scans it into a key.
func sqlKey(v any, desc bool) app.SortKey {
	switch x := v.(type) {
	case nil:
		return app.SortKey{Null: true, Desc: desc}
	case int64:
		return app.SortKey{IsNum: true, Num: float64(x), Desc: desc}
	case float64:
		return app.SortKey{IsNum: true, Num: x, Desc: desc}
	case bool:
		return app.SortKey{IsNum: true, Num: float64(boolNum(x)), Desc: desc}
	case []byte:
		return app.SortKey{Str: string(x), Desc: desc}
	case string:
		return app.SortKey{Str: x, Desc: desc}
	}
	return app.SortKey{Str: fmt.Sprint(v), Desc: desc}
}

func boolNum(b bool) int {
	if b {
		return 1
	}
	return 0
}

// KeysOf computes the keys RunKeys gives a run from the run as MLflow's
// REST API sends it (for a project searched through MLflow's REST API).
func (r *Reader) KeysOf(orderBy []string, run mc.Run) ([]app.SortKey, error) {
	// MLflow takes bare attribute names in order_by ("start_time"); the
	// SQL path leaves them to MLflow, whose answer these keys describe.
	named := make([]string, len(orderBy))
	for i, c := range orderBy {
		c = strings.TrimSpace(c)
		if f, _, _ := strings.Cut(c, " "); !strings.Contains(f, ".") {
			c = "attributes." + c
		}
		named[i] = c
	}
	order, err := parseOrder(named)
	if err != nil {
		return nil, ErrFallback
	}
	info := run.Info
	id := info.RunID
	if id == "" {
		id = info.RunUUID
	}
	str := func(s string, desc bool) app.SortKey { return app.SortKey{Str: s, Desc: desc} }
	num := func(n int64, desc bool) app.SortKey { return app.SortKey{IsNum: true, Num: float64(n), Desc: desc} }
	null := func(desc bool) app.SortKey { return app.SortKey{Null: true, Desc: desc} }
	rankOf := func(n int) app.SortKey { return app.SortKey{IsNum: true, Num: float64(n)} }
	var keys []app.SortKey
	start := false
	for _, c := range order {
		desc := !c.asc
		var v app.SortKey
		switch c.kind {
		case "attribute":
			switch orderAttributes[c.key] {
			case "run_uuid":
				v = str(id, desc)
			case "name":
				v = str(info.RunName, desc)
			case "user_id":
				v = str(info.UserID, desc)
			case "status":
				v = str(info.Status, desc)
			case "artifact_uri":
				v = str(info.ArtifactURI, desc)
			case "start_time":
				start = true
				v = num(info.StartTime, desc)
			case "end_time":
				// MLflow leaves end_time NULL until a run ends and sends no
				// end_time then.
				v = null(desc)
				if info.EndTime != 0 {
					v = num(info.EndTime, desc)
				}
			}
			keys = append(keys, rankOf(boolNum(v.Null)), v)
		case "metric":
			rank, v := 2, null(desc)
			for _, m := range run.Data.Metrics {
				if m.Key == c.key {
					if math.IsNaN(m.Value) {
						rank, v = 1, app.SortKey{IsNum: true, Desc: desc} // stored as 0 with is_nan
					} else {
						rank, v = 0, app.SortKey{IsNum: true, Num: m.Value, Desc: desc}
					}
				}
			}
			keys = append(keys, rankOf(rank), v)
		default:
			list := run.Data.Params
			if c.kind == "tag" {
				list = run.Data.Tags
			}
			rank, v := 1, null(desc)
			for _, t := range list {
				if t.Key == c.key {
					rank, v = 0, str(t.Value, desc)
				}
			}
			keys = append(keys, rankOf(rank), v)
		}
	}
	if !start {
		keys = append(keys, num(info.StartTime, true))
	}
	return append(keys, str(id, false)), nil
}

// RunsByID reads runs (latest metrics, params, tags) in the order of ids;
// ids not in the database are left out. Incomplete marks the runs with
// inputs or outputs, which only runs/get sends whole.
func (r *Reader) RunsByID(ctx context.Context, projectPath string, ids []string) (app.DirectRunPage, error) {
	path := dbKey(projectPath)
	var page app.DirectRunPage
	if len(ids) == 0 || neverStarted(projectPath) {
		return page, nil
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return page, err
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := db.QueryContext(ctx, "SELECT run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage FROM runs WHERE run_uuid IN "+placeholders(len(ids)), args...)
	if err != nil {
		return page, r.queryErr(ctx, path, "reading runs", err)
	}
	found := map[string]mc.Run{}
	for rows.Next() {
		var (
			id, stage                    string
			name, user, status, artifact sql.NullString
			exp                          int64
			start, end                   sql.NullInt64
		)
		if err := rows.Scan(&id, &name, &exp, &user, &status, &start, &end, &artifact, &stage); err != nil {
			rows.Close()
			return page, r.queryErr(ctx, path, "reading runs", err)
		}
		found[id] = mc.Run{
			Info: mc.RunInfo{RunID: id, RunUUID: id, RunName: name.String, ExperimentID: strconv.FormatInt(exp, 10),
				UserID: user.String, Status: status.String, StartTime: start.Int64, EndTime: end.Int64,
				ArtifactURI: artifact.String, LifecycleStage: stage},
			Inputs: emptyIO, Outputs: emptyIO,
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return page, r.queryErr(ctx, path, "reading runs", err)
	}
	index := map[string]int{}
	for _, id := range ids {
		if run, ok := found[id]; ok {
			if _, dup := index[id]; !dup {
				index[id] = len(page.Runs)
				page.Runs = append(page.Runs, run)
			}
		}
	}
	page.Incomplete = make([]bool, len(page.Runs))
	page.Total = len(page.Runs)
	return page, r.fillData(ctx, db, path, &page, index)
}

// MetricHistories reads every metric's history of a run (deleted runs
// too), at most max points per metric, in step order (then timestamp,
// then value, as MetricHistory orders by step).
func (r *Reader) MetricHistories(ctx context.Context, projectPath, runID string, max int) (map[string][]domain.MetricPoint, error) {
	path := dbKey(projectPath)
	if neverStarted(projectPath) {
		return map[string][]domain.MetricPoint{}, nil
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT key, value, timestamp, step, is_nan FROM (
	  SELECT key, value, timestamp, step, is_nan, ROW_NUMBER() OVER (PARTITION BY key ORDER BY step, timestamp, value) AS n
	  FROM metrics WHERE run_uuid = ?) WHERE n <= ? ORDER BY key, n`, runID, max)
	if err != nil {
		return nil, r.queryErr(ctx, path, "reading metric histories", err)
	}
	defer rows.Close()
	out := map[string][]domain.MetricPoint{}
	for rows.Next() {
		var p domain.MetricPoint
		var ts, step sql.NullInt64
		var isNaN bool
		if err := rows.Scan(&p.Key, &p.Value, &ts, &step, &isNaN); err != nil {
			return nil, r.queryErr(ctx, path, "reading metric histories", err)
		}
		if isNaN {
			p.Value = math.NaN()
		}
		p.Timestamp, p.Step = ts.Int64, step.Int64
		out[p.Key] = append(out[p.Key], p)
	}
	return out, r.queryErr(ctx, path, "reading metric histories", rows.Err())
}

// driver is chooseDriver's answer, remembered per database state and
// filter (r.drivers): a sleeping or archived project's database does not
// change, and sampling its tables on every search of it cost about as
// much as the search itself. A stale answer could only make a search
// slower, never different; the database's change counter keys it all
// the same.
func (r *Reader) driver(ctx context.Context, p crossPlan) (int, error) {
	if p.db.planned || len(p.filters) == 0 {
		return -1, nil
	}
	counter, ok := changeCounter(p.path)
	if !ok {
		return chooseDriver(ctx, p.db, p.filters)
	}
	var k strings.Builder
	fmt.Fprintf(&k, "%s\x00%d", p.path, counter)
	for _, c := range p.filters {
		fmt.Fprintf(&k, "\x00%s\x00%s\x00%s", c.kind, c.key, c.op)
	}
	key := k.String()
	if d, hit := r.drivers.get(key); hit {
		return d, nil
	}
	d, err := chooseDriver(ctx, p.db, p.filters)
	if err != nil {
		return -1, err
	}
	r.drivers.put(key, d)
	return d, nil
}
