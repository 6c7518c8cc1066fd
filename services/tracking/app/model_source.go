package app

import (
	"context"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"

	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// resolveSource turns the notations MLflow 3's server refuses as a
// version source (runs:/<run>/<path>, models:/<name>/<version>,
// models:/<name>@<alias>) into the storage location the stock client
// would send, and names the run the version comes from. Plain storage
// URIs and logged-model URIs (models:/m-<id>) pass as they are.
func (t target) resolveSource(ctx context.Context, source string) (resolved, runID string, err error) {
	switch {
	case strings.HasPrefix(source, "runs:/"):
		rest := strings.TrimPrefix(source, "runs:/")
		id, p, _ := strings.Cut(strings.TrimLeft(rest, "/"), "/")
		if id == "" {
			return "", "", errs.Invalidf("source %q: a runs:/ URI reads runs:/<run_id>/<artifact path>", source)
		}
		r, err := t.run(ctx, id, false)
		if err != nil {
			return "", "", err
		}
		src, err := t.runModelSource(ctx, r, strings.Trim(p, "/"))
		return src, r.ID, err
	case strings.HasPrefix(source, "models:/"):
		ref := strings.Trim(strings.TrimPrefix(source, "models:/"), "/")
		if domain.LoggedModelID(source) != "" && !strings.ContainsAny(ref, "/@") {
			return source, "", nil // a logged model: MLflow takes it as it is
		}
		name, version, byAlias := strings.Cut(ref, "@")
		if !byAlias {
			i := strings.LastIndexByte(ref, '/')
			if i <= 0 {
				return "", "", errs.Invalidf("source %q: want models:/m-<logged model id>, models:/<name>/<version> or models:/<name>@<alias>", source)
			}
			name, version = ref[:i], ref[i+1:]
		}
		v, err := t.versionOf(ctx, name, version, byAlias)
		if err != nil && !byAlias && errs.Is(err, errs.NotFound) {
			// MLflow would answer this source with a 500; it is the caller's.
			return "", "", errs.Invalidf("source %q: project %s has no version %s of registered model %q", source, t.p.Name, version, name)
		}
		if err != nil {
			return "", "", err
		}
		return v.Source, v.RunID, nil
	}
	return source, "", nil
}

// runModelSource finds the model of runs:/<run>/<p> as MLflow's
// register_model does: a folder of the run's artifacts holding an MLmodel
// file, else the run's logged model named p.
func (t target) runModelSource(ctx context.Context, r domain.Run, p string) (string, error) {
	if p == "" {
		p = DefaultModelPath
	}
	if _, _, inModels := domain.SplitLoggedModelPath(p); !inModels {
		if clean, err := cleanPath(p); err == nil {
			if ok, err := t.isModel(ctx, t.runTree(r), clean); err == nil && ok {
				return strings.TrimRight(r.Info.ArtifactURI, "/") + "/" + clean, nil
			}
		}
		for _, id := range r.ModelOutputs() {
			lm, err := t.c.GetLoggedModel(ctx, id)
			if err != nil {
				return "", t.mlflowErr(err)
			}
			if lm.Name == p {
				return "models:/" + id, nil
			}
		}
	}
	return t.modelSource(ctx, r, p) // its error says what is missing
}

// versionOf is one version of a registered model, by number or alias.
func (t target) versionOf(ctx context.Context, name, ref string, byAlias bool) (mc.ModelVersion, error) {
	if !byAlias {
		v, err := t.c.GetModelVersion(ctx, name, ref)
		if err != nil {
			return mc.ModelVersion{}, t.mlflowErr(err)
		}
		return v, nil
	}
	m, err := t.c.GetRegisteredModel(ctx, name)
	if err != nil {
		return mc.ModelVersion{}, t.mlflowErr(err)
	}
	for _, a := range m.Aliases {
		if a.Alias == ref {
			v, err := t.c.GetModelVersion(ctx, name, a.Version)
			if err != nil {
				return mc.ModelVersion{}, t.mlflowErr(err)
			}
			return v, nil
		}
	}
	return mc.ModelVersion{}, errs.NotFoundf("registered model %q has no alias %q", name, ref)
}
