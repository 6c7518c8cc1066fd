package mlflowdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mlpanel/mlpanel/services/tracking/app"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// emptyIO is what runs/get sends for a run without inputs or outputs.
var emptyIO = json.RawMessage(`{}`)

func stages(view string) ([]string, error) {
	switch view {
	case mc.ViewActive, "":
		return []string{mc.StageActive}, nil
	case mc.ViewDeleted:
		return []string{mc.StageDeleted}, nil
	case mc.ViewAll:
		return []string{mc.StageActive, mc.StageDeleted}, nil
	}
	return nil, ErrFallback
}

// SearchRuns answers one page of runs/search with its total from the
// database at path, in MLflow's order. ErrFallback when it cannot.
func (r *Reader) SearchRuns(ctx context.Context, projectPath string, s app.DirectRunSearch) (app.DirectRunPage, error) {
	path := dbKey(projectPath)
	filters, err := parseFilter(s.Filter)
	if err != nil {
		return app.DirectRunPage{}, ErrFallback
	}
	order, err := parseOrder(s.OrderBy)
	if err != nil {
		return app.DirectRunPage{}, ErrFallback
	}
	st, err := stages(s.View)
	if err != nil {
		return app.DirectRunPage{}, err
	}
	var ids []int64
	seen := map[int64]bool{}
	for _, id := range s.ExperimentIDs {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != id {
			return app.DirectRunPage{}, ErrFallback
		}
		if !seen[n] {
			seen[n] = true
			ids = append(ids, n)
		}
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return app.DirectRunPage{}, err
	}
	var page app.DirectRunPage
	if ids != nil {
		// MLflow searches what it is given; the REST path first checks
		// that each experiment exists and is active, and says so if not.
		var active int
		q := db.query()
		q.add("SELECT COUNT(*) FROM experiments WHERE lifecycle_stage = 'active' AND experiment_id IN "+placeholders(len(ids)), int64Args(ids)...)
		if err := db.QueryRowContext(ctx, q.sql.String(), q.args...).Scan(&active); err != nil {
			return app.DirectRunPage{}, r.queryErr(ctx, path, "checking experiments", err)
		}
		if active != len(ids) {
			return app.DirectRunPage{}, ErrFallback
		}
	}
	drive, err := chooseDriver(ctx, db, filters)
	if err != nil {
		return app.DirectRunPage{}, r.queryErr(ctx, path, "sampling filter tables", err)
	}
	// The count and the page are two scans of the same rows: they run
	// side by side on two connections. (One query with COUNT(*) OVER ()
	// takes the CPU time of both in one thread: the window materialises
	// every matching row, measured at 100,000 runs as slow as the two
	// queries one after the other.)
	cnt := db.query()
	cnt.add("SELECT COUNT(*)")
	cnt.from(filters, drive)
	cnt.where(ids, st, filters)
	counted := make(chan error, 1) // buffered: an early return leaks nothing
	var n int
	key := ""
	if state, ok := r.state(ctx, path); ok {
		key = fmt.Sprintf("%s\x00%s\x00%s\x00%#v", path, state, cnt.sql.String(), cnt.args)
	}
	if cached, hit := r.totals.get(key); key != "" && hit {
		n = cached
		counted <- nil
	} else {
		go func() {
			err := db.QueryRowContext(ctx, cnt.sql.String(), cnt.args...).Scan(&n)
			if err == nil && key != "" {
				r.totals.put(key, n)
			}
			counted <- err
		}()
	}
	total := func() error {
		if err := <-counted; err != nil {
			return r.queryErr(ctx, path, "counting runs", err)
		}
		page.Total = n
		return nil
	}
	if s.Limit < 0 {
		return page, total()
	}
	q := db.query()
	joins, orderSQL, jargs := q.joinsAndOrder(order)
	// The ordered scan carries the run ids only (a deep page sorts
	// narrow rows); the page's rows are read by id afterwards.
	q.add("SELECT runs.run_uuid")
	q.from(filters, drive)
	q.add(joins, jargs...)
	q.where(ids, st, filters)
	q.add(" ORDER BY "+orderSQL+" LIMIT ? OFFSET ?", db.limit(s.Limit), s.Offset)
	idRows, err := db.QueryContext(ctx, q.sql.String(), q.args...)
	if err != nil {
		return app.DirectRunPage{}, r.queryErr(ctx, path, "searching runs", err)
	}
	index := map[string]int{}
	var pageIDs []any
	for idRows.Next() {
		var id string
		if err := idRows.Scan(&id); err != nil {
			idRows.Close()
			return app.DirectRunPage{}, r.queryErr(ctx, path, "searching runs", err)
		}
		index[id] = len(pageIDs)
		pageIDs = append(pageIDs, id)
	}
	idRows.Close()
	if err := idRows.Err(); err != nil {
		return app.DirectRunPage{}, r.queryErr(ctx, path, "searching runs", err)
	}
	page.Runs = make([]mc.Run, len(pageIDs))
	if len(pageIDs) == 0 {
		return page, total()
	}
	rows, err := db.QueryContext(ctx, "SELECT run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage FROM runs WHERE run_uuid IN "+placeholders(len(pageIDs)), pageIDs...)
	if err != nil {
		return app.DirectRunPage{}, r.queryErr(ctx, path, "reading runs", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, stage                    string
			name, user, status, artifact sql.NullString
			exp                          int64
			start, end                   sql.NullInt64
		)
		if err := rows.Scan(&id, &name, &exp, &user, &status, &start, &end, &artifact, &stage); err != nil {
			return app.DirectRunPage{}, r.queryErr(ctx, path, "reading runs", err)
		}
		page.Runs[index[id]] = mc.Run{
			Info: mc.RunInfo{RunID: id, RunUUID: id, RunName: name.String, ExperimentID: strconv.FormatInt(exp, 10),
				UserID: user.String, Status: status.String, StartTime: start.Int64, EndTime: end.Int64,
				ArtifactURI: artifact.String, LifecycleStage: stage},
			Inputs: emptyIO, Outputs: emptyIO,
		}
	}
	if err := rows.Err(); err != nil {
		return app.DirectRunPage{}, r.queryErr(ctx, path, "reading runs", err)
	}
	rows.Close()
	if err := total(); err != nil {
		return app.DirectRunPage{}, err
	}
	page.Incomplete = make([]bool, len(page.Runs))
	if err := r.fillData(ctx, db, path, &page, index); err != nil {
		return app.DirectRunPage{}, err
	}
	return page, nil
}

// fillData adds the latest metrics, params and tags of the page's runs,
// with one query each, and marks the runs that have inputs or outputs.
func (r *Reader) fillData(ctx context.Context, db *conn, path string, page *app.DirectRunPage, index map[string]int) error {
	if len(page.Runs) == 0 {
		return nil
	}
	in := strings.Repeat("?, ", len(page.Runs))
	in = "(" + in[:len(in)-2] + ")"
	ids := make([]any, len(page.Runs))
	for i, run := range page.Runs {
		ids[i] = run.Info.RunID
	}
	each := func(what, sqlText string, args []any, scan func(rows *sql.Rows) error) error {
		rows, err := db.QueryContext(ctx, sqlText, args...)
		if err != nil {
			return r.queryErr(ctx, path, what, err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return r.queryErr(ctx, path, what, err)
			}
		}
		return r.queryErr(ctx, path, what, rows.Err())
	}
	err := each("reading latest metrics", "SELECT run_uuid, key, value, timestamp, step, is_nan FROM latest_metrics WHERE run_uuid IN "+in+" ORDER BY run_uuid, "+db.insertOrder, ids, func(rows *sql.Rows) error {
		var id, key string
		var v float64
		var ts, step sql.NullInt64
		var isNaN bool
		if err := rows.Scan(&id, &key, &v, &ts, &step, &isNaN); err != nil {
			return err
		}
		if isNaN {
			v = math.NaN()
		}
		d := &page.Runs[index[id]].Data
		d.Metrics = append(d.Metrics, mc.Metric{Key: key, Value: v, Timestamp: ts.Int64, Step: step.Int64})
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range []struct{ table, what string }{{"params", "reading params"}, {"tags", "reading tags"}} {
		err := each(t.what, "SELECT run_uuid, key, value FROM "+t.table+" WHERE run_uuid IN "+in+" ORDER BY run_uuid, "+db.insertOrder, ids, func(rows *sql.Rows) error {
			var id, key string
			var v sql.NullString
			if err := rows.Scan(&id, &key, &v); err != nil {
				return err
			}
			d := &page.Runs[index[id]].Data
			if t.table == "params" {
				d.Params = append(d.Params, mc.Tag{Key: key, Value: v.String})
			} else {
				d.Tags = append(d.Tags, mc.Tag{Key: key, Value: v.String})
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	io := append(append([]any{}, ids...), ids...)
	return each("reading run inputs", "SELECT destination_id FROM inputs WHERE destination_id IN "+in+" UNION SELECT source_id FROM inputs WHERE source_id IN "+in, io, func(rows *sql.Rows) error {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		if i, ok := index[id]; ok {
			page.Incomplete[i] = true
		}
		return nil
	})
}

// RunTimes counts the active runs of each experiment and finds the times
// of the experiment time rule (domain.RunTimes.Add, in SQL), with one
// grouped query.
func (r *Reader) RunTimes(ctx context.Context, projectPath string, experimentIDs []string) (map[string]domain.RunTimes, error) {
	path := dbKey(projectPath)
	counter, cacheable := r.state(ctx, path)
	if !cacheable {
		return r.runTimes(ctx, path, experimentIDs)
	}
	cached, missing := r.times.lookup(path, counter, experimentIDs)
	if len(missing) == 0 {
		// The revision check still applies: a cached answer is only
		// given for a database this package reads.
		if _, err := r.db(ctx, path); err != nil {
			return nil, err
		}
		return cached, nil
	}
	fresh, err := r.runTimes(ctx, path, missing)
	if err != nil {
		return nil, err
	}
	r.times.store(path, counter, missing, fresh)
	for id, t := range fresh {
		cached[id] = t
	}
	return cached, nil
}

// state names the committed state of the database at path, read before
// a query, so that a result is cached under no older state than the one
// it saw; ok is false when it cannot say. SQLite: the file change
// counter. PostgreSQL: the transaction snapshot (xmin:xmax:in-progress
// ids, shared by the server's databases): while it reads the same, no
// transaction has started writing, committed or aborted since, so no
// row of this database changed.
func (r *Reader) state(ctx context.Context, path string) (string, bool) {
	if filepath.IsAbs(path) {
		c, ok := changeCounter(path)
		return strconv.FormatUint(uint64(c), 10), ok
	}
	db, err := r.db(ctx, path)
	if err != nil || db.dialect != postgres {
		return "", false
	}
	var snap string
	if err := db.QueryRowContext(ctx, "SELECT pg_current_snapshot()::text").Scan(&snap); err != nil {
		return "", false
	}
	return snap, true
}

func (r *Reader) runTimes(ctx context.Context, path string, experimentIDs []string) (map[string]domain.RunTimes, error) {
	out := make(map[string]domain.RunTimes, len(experimentIDs))
	if len(experimentIDs) == 0 {
		return out, nil
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return nil, err
	}
	q := db.query()
	q.add(`SELECT experiment_id, COUNT(*),
	  COALESCE(MIN(CASE WHEN start_time > 0 THEN start_time END), 0),
	  COALESCE(MAX(CASE WHEN status IN ('RUNNING', 'SCHEDULED') OR COALESCE(end_time, 0) = 0 THEN COALESCE(start_time, 0) ELSE end_time END), 0)
	  FROM runs WHERE lifecycle_stage = 'active' AND experiment_id IN (`)
	for i, id := range experimentIDs {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return nil, ErrFallback
		}
		if i > 0 {
			q.add(", ")
		}
		q.add("?", n)
	}
	q.add(") GROUP BY experiment_id")
	rows, err := db.QueryContext(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, r.queryErr(ctx, path, "counting runs per experiment", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var t domain.RunTimes
		if err := rows.Scan(&id, &t.Count, &t.FirstStart, &t.LastUpdate); err != nil {
			return nil, r.queryErr(ctx, path, "counting runs per experiment", err)
		}
		t.LastUpdate = max(t.LastUpdate, 0)
		out[strconv.FormatInt(id, 10)] = t
	}
	return out, r.queryErr(ctx, path, "counting runs per experiment", rows.Err())
}

// queryErr turns a failed query into ErrFallback (logged once) unless the
// caller's deadline ended it.
func (r *Reader) queryErr(ctx context.Context, path, what string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, ErrFallback) {
		return err
	}
	return r.fallback(path, fmt.Sprintf("%s: %v", what, err))
}

func placeholders(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

func int64Args(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}
