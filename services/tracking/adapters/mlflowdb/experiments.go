package mlflowdb

import (
	"context"
	"database/sql"
	"strconv"

	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// Experiments lists the experiments of a view in experiments/search's
// default order (creation_time DESC, experiment_id ASC), without tags.
func (r *Reader) Experiments(ctx context.Context, projectPath, view string) ([]mc.Experiment, error) {
	path := dbKey(projectPath)
	st, err := stages(view)
	if err != nil {
		return nil, err
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return nil, err
	}
	q := db.query()
	q.add("SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time FROM experiments WHERE lifecycle_stage IN "+placeholders(len(st)), strArgs(st)...)
	q.add(" ORDER BY creation_time DESC, experiment_id ASC")
	rows, err := db.QueryContext(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, r.queryErr(ctx, path, "listing experiments", err)
	}
	defer rows.Close()
	var out []mc.Experiment
	for rows.Next() {
		var (
			id               int64
			name, stage      string
			artifacts        sql.NullString
			created, updated sql.NullInt64
		)
		if err := rows.Scan(&id, &name, &artifacts, &stage, &created, &updated); err != nil {
			return nil, r.queryErr(ctx, path, "listing experiments", err)
		}
		out = append(out, mc.Experiment{ExperimentID: strconv.FormatInt(id, 10), Name: name, ArtifactLocation: artifacts.String,
			LifecycleStage: stage, CreationTime: created.Int64, LastUpdateTime: updated.Int64})
	}
	return out, r.queryErr(ctx, path, "listing experiments", rows.Err())
}

// ExperimentTags returns the tags of the experiments.
func (r *Reader) ExperimentTags(ctx context.Context, projectPath string, experimentIDs []string) (map[string][]mc.Tag, error) {
	path := dbKey(projectPath)
	out := map[string][]mc.Tag{}
	if len(experimentIDs) == 0 {
		return out, nil
	}
	ids := make([]any, len(experimentIDs))
	for i, id := range experimentIDs {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return nil, ErrFallback
		}
		ids[i] = n
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN "+placeholders(len(ids))+" ORDER BY experiment_id, key", ids...)
	if err != nil {
		return nil, r.queryErr(ctx, path, "reading experiment tags", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var key string
		var value sql.NullString
		if err := rows.Scan(&id, &key, &value); err != nil {
			return nil, r.queryErr(ctx, path, "reading experiment tags", err)
		}
		k := strconv.FormatInt(id, 10)
		out[k] = append(out[k], mc.Tag{Key: key, Value: value.String})
	}
	return out, r.queryErr(ctx, path, "reading experiment tags", rows.Err())
}

func strArgs(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
