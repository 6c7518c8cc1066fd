package mlflowdb

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	"github.com/mlpanel/mlpanel/services/tracking/app"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// MLflow's single-tenant server keeps every registry row in this
// workspace (SqlAlchemyStore._get_active_workspace).
const defaultWorkspace = "default"

// The app asks for registry reads by this interface.
var _ app.RegistryReads = (*Reader)(nil)

// promptTag marks prompts, which the registry's searches leave out
// unless the filter asks for them (such filters go to MLflow).
const promptTag = "mlflow.prompt.is_prompt"

// nameFilter parses the registry filters the SQL path answers: none, or
// one comparison of the model name (`name = 'x'`, !=, LIKE, ILIKE), the
// shape domain.NameFilter and most users write. Anything else is
// errUntranslatable.
func nameFilter(filter string) (op, value string, err error) {
	if strings.TrimSpace(filter) == "" {
		return "", "", nil
	}
	toks, err := tokenize(filter)
	if err != nil {
		return "", "", err
	}
	if len(toks) != 3 || toks[0] != (token{"ident", "name"}) || toks[2].t != "string" {
		return "", "", errUntranslatable
	}
	switch op = toks[1].v; op {
	case "=", "!=", "LIKE", "ILIKE":
		return op, toks[2].v, nil
	}
	return "", "", errUntranslatable
}

// modelWhere writes the conditions of registered-models/search for table
// alias a (registered_models or model_versions): the workspace, no
// prompts, the name filter.
func modelWhere(q *query, a, tagTable, op, value string) {
	// MLflow compares the prompt tag's key and value with its = (case
	// counts on MySQL too): compare writes it in the dialect.
	q.add(" WHERE "+a+".workspace = ? AND NOT EXISTS (SELECT 1 FROM "+tagTable+" pt WHERE pt.workspace = "+a+".workspace AND pt.name = "+a+".name AND ", defaultWorkspace)
	q.compare("pt.key", "=", promptTag)
	q.add(" AND ")
	q.compare("pt.value", "=", "true")
	q.add(")")
	if op != "" {
		q.add(" AND ")
		q.compare(a+".name", op, value)
	}
}

// RegisteredModels answers registered-models/search in its order (name)
// with desc reversing it: the window [offset, offset+limit) (limit 0: to
// the end) with tags, aliases and latest versions, and the true total.
func (r *Reader) RegisteredModels(ctx context.Context, projectPath, filter string, desc bool, offset, limit int) (app.DirectModels, error) {
	path := dbKey(projectPath)
	op, value, err := nameFilter(filter)
	if err != nil {
		return app.DirectModels{}, ErrFallback
	}
	db, err := r.db(ctx, path)
	if err != nil {
		return app.DirectModels{}, err
	}
	var out app.DirectModels
	cq := db.query()
	cq.add("SELECT count(*) FROM registered_models rm")
	modelWhere(cq, "rm", "registered_model_tags", op, value)
	if err := db.QueryRowContext(ctx, cq.sql.String(), cq.args...).Scan(&out.Total); err != nil {
		return app.DirectModels{}, r.queryErr(ctx, path, "counting registered models", err)
	}
	if limit < 0 || offset >= out.Total {
		return out, nil
	}
	q := db.query()
	q.add("SELECT rm.name, rm.creation_time, rm.last_updated_time, rm.description FROM registered_models rm")
	modelWhere(q, "rm", "registered_model_tags", op, value)
	if desc {
		q.add(" ORDER BY rm.name DESC")
	} else {
		q.add(" ORDER BY rm.name")
	}
	q.add(" LIMIT ? OFFSET ?", db.limit(limit), offset)
	rows, err := db.QueryContext(ctx, q.sql.String(), q.args...)
	if err != nil {
		return app.DirectModels{}, r.queryErr(ctx, path, "listing registered models", err)
	}
	var names []string
	for rows.Next() {
		var (
			m                mc.RegisteredModel
			created, updated sql.NullInt64
			descr            sql.NullString
		)
		if err := rows.Scan(&m.Name, &created, &updated, &descr); err != nil {
			rows.Close()
			return app.DirectModels{}, r.queryErr(ctx, path, "listing registered models", err)
		}
		m.CreationTimestamp, m.LastUpdatedTimestamp, m.Description = created.Int64, updated.Int64, descr.String
		out.Models = append(out.Models, m)
		names = append(names, m.Name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return app.DirectModels{}, r.queryErr(ctx, path, "listing registered models", err)
	}
	// The page's names select the rest; a whole list (limit 0) reads the
	// tables once instead of through a list of every name.
	sel := names
	if limit == 0 {
		sel = nil
	}
	tags, err := r.modelTags(ctx, db, path, sel)
	if err != nil {
		return app.DirectModels{}, err
	}
	aliases, err := r.aliases(ctx, db, path, sel)
	if err != nil {
		return app.DirectModels{}, err
	}
	// MLflow computes the latest versions with a window partitioned by
	// (workspace, name, stage), which SQLite answers in stage order.
	latest, err := r.versions(ctx, db, path, sel, true, "", "", "mv.name, mv.current_stage", 0, 0)
	if err != nil {
		return app.DirectModels{}, err
	}
	byName := map[string][]mc.ModelVersion{}
	for _, v := range latest {
		byName[v.Name] = append(byName[v.Name], v)
	}
	for i := range out.Models {
		m := &out.Models[i]
		m.Tags, m.LatestVersions = tags[m.Name], byName[m.Name]
		for _, a := range aliases[m.Name] {
			m.Aliases = append(m.Aliases, mc.Alias{Alias: a.alias, Version: a.version})
		}
	}
	return out, nil
}

// versionOrder is how ModelVersions orders: by model name and
// version number (mlpanel's id order), or in model-versions/search's
// own order (last_updated_timestamp DESC, name ASC, version DESC), which
// a sort by another key keeps among equals.
func versionOrder(byID, desc bool) string {
	switch {
	case !byID:
		return "mv.last_updated_time DESC, mv.name ASC, mv.version DESC"
	case desc:
		return "mv.name DESC, mv.version DESC"
	default:
		return "mv.name, mv.version"
	}
}

// ModelVersions answers model-versions/search (of one model, or of every
// model when model is ""): a window in the order of versionOrder, with
// tags and the aliases the model gives each version, and the true total.
// A model that does not exist is ErrFallback, so MLflow says so.
func (r *Reader) ModelVersions(ctx context.Context, projectPath, model string, byID, desc bool, offset, limit int) (app.DirectVersions, error) {
	path := dbKey(projectPath)
	db, err := r.db(ctx, path)
	if err != nil {
		return app.DirectVersions{}, err
	}
	op := ""
	if model != "" {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM registered_models WHERE workspace = ? AND name = ?", defaultWorkspace, model).Scan(&n); err != nil {
			return app.DirectVersions{}, r.queryErr(ctx, path, "finding the registered model", err)
		}
		if n == 0 {
			return app.DirectVersions{}, ErrFallback
		}
		op = "="
	}
	var out app.DirectVersions
	cq := db.query()
	cq.add("SELECT count(*) FROM model_versions mv")
	modelWhere(cq, "mv", "model_version_tags", op, model)
	cq.add(" AND mv.current_stage != 'Deleted_Internal'")
	if err := db.QueryRowContext(ctx, cq.sql.String(), cq.args...).Scan(&out.Total); err != nil {
		return app.DirectVersions{}, r.queryErr(ctx, path, "counting model versions", err)
	}
	if limit < 0 || offset >= out.Total {
		return out, nil
	}
	if out.Versions, err = r.versions(ctx, db, path, nil, false, op, model, versionOrder(byID, desc), offset, limit); err != nil {
		return app.DirectVersions{}, err
	}
	var sel []string
	if model != "" {
		sel = []string{model}
	}
	aliases, err := r.aliases(ctx, db, path, sel)
	if err != nil {
		return app.DirectVersions{}, err
	}
	for i := range out.Versions {
		v := &out.Versions[i]
		for _, a := range aliases[v.Name] {
			if a.version == v.Version {
				v.Aliases = append(v.Aliases, a.alias)
			}
		}
	}
	return out, nil
}

// versions reads model versions with their tags: of the models in names
// (nil: every model) or matching op/value, the latest of each stage only
// when latest, in order, windowed by offset and limit (0: to the end).
func (r *Reader) versions(ctx context.Context, db *conn, path string, names []string, latest bool, op, value, order string, offset, limit int) ([]mc.ModelVersion, error) {
	q := db.query()
	q.add("SELECT mv.name, mv.version, mv.creation_time, mv.last_updated_time, mv.description, mv.user_id, mv.current_stage, mv.source, mv.run_id, mv.status, mv.status_message, mv.run_link FROM model_versions mv")
	modelWhere(q, "mv", "model_version_tags", op, value)
	q.add(" AND mv.current_stage != 'Deleted_Internal'")
	if names != nil {
		q.add(" AND mv.name IN "+placeholders(len(names)), strArgs(names)...)
	}
	if latest {
		q.add(" AND mv.version = (SELECT max(l.version) FROM model_versions l WHERE l.workspace = mv.workspace AND l.name = mv.name AND l.current_stage = mv.current_stage)")
	}
	q.add(" ORDER BY "+order+" LIMIT ? OFFSET ?", db.limit(limit), offset)
	rows, err := db.QueryContext(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, r.queryErr(ctx, path, "listing model versions", err)
	}
	defer rows.Close()
	var out []mc.ModelVersion
	for rows.Next() {
		var (
			v                                                       mc.ModelVersion
			version, created, updated                               sql.NullInt64
			descr, user, stage, source, runID, status, msg, runLink sql.NullString
		)
		if err := rows.Scan(&v.Name, &version, &created, &updated, &descr, &user, &stage, &source, &runID, &status, &msg, &runLink); err != nil {
			return nil, r.queryErr(ctx, path, "listing model versions", err)
		}
		v.Version = strconv.FormatInt(version.Int64, 10)
		v.CreationTimestamp, v.LastUpdatedTimestamp = created.Int64, updated.Int64
		v.Description, v.CurrentStage, v.Source, v.RunID = descr.String, stage.String, source.String, runID.String
		v.Status, v.StatusMessage, v.RunLink = status.String, msg.String, runLink.String
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, r.queryErr(ctx, path, "listing model versions", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	tq := db.query()
	tq.add("SELECT t.name, t.version, t.key, t.value FROM model_version_tags t WHERE t.workspace = ?", defaultWorkspace)
	if names != nil || limit > 0 {
		seen := map[string]bool{}
		var sel []string
		for _, v := range out {
			if !seen[v.Name] {
				seen[v.Name] = true
				sel = append(sel, v.Name)
			}
		}
		tq.add(" AND t.name IN "+placeholders(len(sel)), strArgs(sel)...)
	} else if op != "" {
		tq.add(" AND ")
		tq.compare("t.name", op, value)
	}
	trows, err := db.QueryContext(ctx, tq.sql.String(), tq.args...)
	if err != nil {
		return nil, r.queryErr(ctx, path, "reading model version tags", err)
	}
	defer trows.Close()
	tags := map[[2]string][]mc.Tag{}
	for trows.Next() {
		var (
			name, key string
			version   int64
			val       sql.NullString
		)
		if err := trows.Scan(&name, &version, &key, &val); err != nil {
			return nil, r.queryErr(ctx, path, "reading model version tags", err)
		}
		k := [2]string{name, strconv.FormatInt(version, 10)}
		tags[k] = append(tags[k], mc.Tag{Key: key, Value: val.String})
	}
	if err := trows.Err(); err != nil {
		return nil, r.queryErr(ctx, path, "reading model version tags", err)
	}
	for i := range out {
		out[i].Tags = tags[[2]string{out[i].Name, out[i].Version}]
	}
	return out, nil
}

// modelTags reads the tags of registered models by name (nil: all).
func (r *Reader) modelTags(ctx context.Context, db *conn, path string, names []string) (map[string][]mc.Tag, error) {
	q := db.query()
	q.add("SELECT name, key, value FROM registered_model_tags WHERE workspace = ?", defaultWorkspace)
	if names != nil {
		q.add(" AND name IN "+placeholders(len(names)), strArgs(names)...)
	}
	rows, err := db.QueryContext(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, r.queryErr(ctx, path, "reading registered model tags", err)
	}
	defer rows.Close()
	out := map[string][]mc.Tag{}
	for rows.Next() {
		var name, key string
		var val sql.NullString
		if err := rows.Scan(&name, &key, &val); err != nil {
			return nil, r.queryErr(ctx, path, "reading registered model tags", err)
		}
		out[name] = append(out[name], mc.Tag{Key: key, Value: val.String})
	}
	return out, r.queryErr(ctx, path, "reading registered model tags", rows.Err())
}

type alias struct{ alias, version string }

// aliases reads the aliases of registered models by name (nil: all).
func (r *Reader) aliases(ctx context.Context, db *conn, path string, names []string) (map[string][]alias, error) {
	q := db.query()
	q.add("SELECT name, alias, version FROM registered_model_aliases WHERE workspace = ?", defaultWorkspace)
	if names != nil {
		q.add(" AND name IN "+placeholders(len(names)), strArgs(names)...)
	}
	q.add(" ORDER BY name, alias")
	rows, err := db.QueryContext(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, r.queryErr(ctx, path, "reading registered model aliases", err)
	}
	defer rows.Close()
	out := map[string][]alias{}
	for rows.Next() {
		var name, a string
		var version int64
		if err := rows.Scan(&name, &a, &version); err != nil {
			return nil, r.queryErr(ctx, path, "reading registered model aliases", err)
		}
		out[name] = append(out[name], alias{a, strconv.FormatInt(version, 10)})
	}
	return out, r.queryErr(ctx, path, "reading registered model aliases", rows.Err())
}
