package mlflowdb

import (
	"context"
	"database/sql"
	"errors"
	"math"

	"github.com/mlpanel/mlpanel/services/tracking/app"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
)

// historyOrder is domain.MetricSortKeys' order applied stably to MLflow's
// get-history order (timestamp, step, value), in SQL.
var historyOrder = map[string][2]string{
	"step":      {"step, timestamp, value", "step DESC, timestamp DESC, value"},
	"timestamp": {"timestamp, step, value", "timestamp DESC, step, value"},
}

// MetricHistory pages one metric's history of an active run.
func (r *Reader) MetricHistory(ctx context.Context, projectPath, runID, key, sortKey string, desc bool, offset, limit int) (app.DirectHistory, error) {
	path := dbKey(projectPath)
	order, ok := historyOrder[sortKey]
	if !ok || runID == "" {
		return app.DirectHistory{}, ErrFallback
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return app.DirectHistory{}, err
	}
	var stage string
	var has bool
	err = db.QueryRowContext(ctx, `SELECT lifecycle_stage, EXISTS (SELECT 1 FROM latest_metrics WHERE run_uuid = runs.run_uuid AND key = ?) FROM runs WHERE run_uuid = ?`, key, runID).Scan(&stage, &has)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (stage != "active" || !has)) {
		return app.DirectHistory{}, ErrFallback // the REST path says what is missing
	}
	if err != nil {
		return app.DirectHistory{}, r.queryErr(ctx, path, "reading a run", err)
	}
	var out app.DirectHistory
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM metrics WHERE run_uuid = ? AND key = ?", runID, key).Scan(&out.Total); err != nil {
		return app.DirectHistory{}, r.queryErr(ctx, path, "counting a metric's history", err)
	}
	if offset >= out.Total || limit < 0 {
		return out, nil
	}
	o := order[0]
	if desc {
		o = order[1]
	}
	rows, err := db.QueryContext(ctx, "SELECT value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ? AND key = ? ORDER BY "+o+" LIMIT ? OFFSET ?", runID, key, db.limit(limit), offset)
	if err != nil {
		return app.DirectHistory{}, r.queryErr(ctx, path, "reading a metric's history", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p domain.MetricPoint
		var isNaN bool
		if err := rows.Scan(&p.Value, &p.Timestamp, &p.Step, &isNaN); err != nil {
			return app.DirectHistory{}, r.queryErr(ctx, path, "reading a metric's history", err)
		}
		if isNaN {
			p.Value = math.NaN()
		}
		p.Key = key
		out.Points = append(out.Points, p)
	}
	return out, r.queryErr(ctx, path, "reading a metric's history", rows.Err())
}
