package mlflowdb

import (
	"context"
	"database/sql"
	"math"
	"strconv"
	"strings"

	"github.com/mlpanel/mlpanel/services/tracking/app"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// SearchVersions answers one project's part of GET /search/models: the
// model versions (prompts left out, as the registry's searches do) whose
// model name matches, with the alias and the tag asked for, in (name,
// version descending) order, the first limit of them with their tags,
// aliases and model tags, and the true count.
func (r *Reader) SearchVersions(ctx context.Context, projectPath string, s app.ModelSearch, limit int) (app.DirectVersions, error) {
	path := dbKey(projectPath)
	if neverStarted(projectPath) {
		return app.DirectVersions{}, nil
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return app.DirectVersions{}, err
	}
	op := ""
	switch {
	case s.Name == "":
	case strings.Contains(s.Name, "%"):
		op = "LIKE"
	default:
		op = "="
	}
	cond := func(q *query) {
		modelWhere(q, "mv", "model_version_tags", op, s.Name)
		q.add(" AND mv.current_stage != 'Deleted_Internal'")
		if s.Alias != "" {
			q.add(" AND EXISTS (SELECT 1 FROM registered_model_aliases a WHERE a.workspace = mv.workspace AND a.name = mv.name AND a.version = mv.version AND a.alias = ?)", s.Alias)
		}
		if s.TagKey != "" {
			val := ""
			var args []any
			if s.HasTagValue {
				val, args = " AND t.value = ?", []any{s.TagValue}
			}
			q.add(" AND (EXISTS (SELECT 1 FROM registered_model_tags t WHERE t.workspace = mv.workspace AND t.name = mv.name AND t.key = ?"+val+")", append([]any{s.TagKey}, args...)...)
			q.add(" OR EXISTS (SELECT 1 FROM model_version_tags t WHERE t.workspace = mv.workspace AND t.name = mv.name AND t.version = mv.version AND t.key = ?"+val+"))", append([]any{s.TagKey}, args...)...)
		}
	}
	var out app.DirectVersions
	cq := db.query()
	cq.add("SELECT count(*) FROM model_versions mv")
	cond(cq)
	if err := db.QueryRowContext(ctx, cq.sql.String(), cq.args...).Scan(&out.Total); err != nil {
		return app.DirectVersions{}, r.queryErr(ctx, path, "counting model versions", err)
	}
	if out.Total == 0 || limit < 0 {
		return out, nil
	}
	q := db.query()
	q.add("SELECT mv.name, mv.version FROM model_versions mv")
	cond(q)
	q.add(" ORDER BY mv.name, mv.version DESC LIMIT ?", db.limit(limit))
	rows, err := db.QueryContext(ctx, q.sql.String(), q.args...)
	if err != nil {
		return app.DirectVersions{}, r.queryErr(ctx, path, "searching model versions", err)
	}
	type nv struct{ name, version string }
	var keys []nv
	var names []string
	seen := map[string]bool{}
	for rows.Next() {
		var k nv
		var v int64
		if err := rows.Scan(&k.name, &v); err != nil {
			rows.Close()
			return app.DirectVersions{}, r.queryErr(ctx, path, "searching model versions", err)
		}
		k.version = strconv.FormatInt(v, 10)
		keys = append(keys, k)
		if !seen[k.name] {
			seen[k.name] = true
			names = append(names, k.name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return app.DirectVersions{}, r.queryErr(ctx, path, "searching model versions", err)
	}
	all, err := r.versions(ctx, db, path, names, false, "", "", "mv.name, mv.version DESC", 0, 0)
	if err != nil {
		return app.DirectVersions{}, err
	}
	aliases, err := r.aliases(ctx, db, path, names)
	if err != nil {
		return app.DirectVersions{}, err
	}
	byKey := map[nv]mc.ModelVersion{}
	for _, v := range all {
		for _, a := range aliases[v.Name] {
			if a.version == v.Version {
				v.Aliases = append(v.Aliases, a.alias)
			}
		}
		byKey[nv{v.Name, v.Version}] = v
	}
	for _, k := range keys {
		if v, ok := byKey[k]; ok {
			out.Versions = append(out.Versions, v)
		}
	}
	return out, nil
}

// ModelTags reads the tags of registered models by name.
func (r *Reader) ModelTags(ctx context.Context, projectPath string, names []string) (map[string][]mc.Tag, error) {
	path := dbKey(projectPath)
	if len(names) == 0 || neverStarted(projectPath) {
		return map[string][]mc.Tag{}, nil
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return nil, err
	}
	return r.modelTags(ctx, db, path, names)
}

// LatestMetrics reads the latest metrics of runs (a model version's
// source run's key metrics).
func (r *Reader) LatestMetrics(ctx context.Context, projectPath string, runIDs []string) (map[string][]mc.Metric, error) {
	path := dbKey(projectPath)
	out := map[string][]mc.Metric{}
	if len(runIDs) == 0 || neverStarted(projectPath) {
		return out, nil
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT run_uuid, key, value, timestamp, step, is_nan FROM latest_metrics WHERE run_uuid IN "+placeholders(len(runIDs))+" ORDER BY run_uuid, key", strArgs(runIDs)...)
	if err != nil {
		return nil, r.queryErr(ctx, path, "reading latest metrics", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, key string
		var v float64
		var ts, step sql.NullInt64
		var isNaN bool
		if err := rows.Scan(&id, &key, &v, &ts, &step, &isNaN); err != nil {
			return nil, r.queryErr(ctx, path, "reading latest metrics", err)
		}
		if isNaN {
			v = math.NaN()
		}
		out[id] = append(out[id], mc.Metric{Key: key, Value: v, Timestamp: ts.Int64, Step: step.Int64})
	}
	return out, r.queryErr(ctx, path, "reading latest metrics", rows.Err())
}
