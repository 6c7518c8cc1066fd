package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// ListRegisteredModels returns one page of a project's registered models;
// filter is MLflow's syntax (e.g. name LIKE 'iris%').
func (s *Service) ListRegisteredModels(ctx context.Context, project, filter string, lp events.ListParams) (events.List[domain.RegisteredModel], error) {
	if err := checkFilter(filter); err != nil {
		return events.List[domain.RegisteredModel]{}, err
	}
	t, err := s.open(ctx, project)
	if err != nil {
		return events.List[domain.RegisteredModel]{}, err
	}
	if res, ok, err := s.directModels(ctx, t, filter, lp); ok {
		return res, err
	}
	models, err := t.c.SearchRegisteredModels(ctx, filter)
	if err != nil {
		return events.List[domain.RegisteredModel]{}, t.mlflowErr(err)
	}
	items := make([]domain.RegisteredModel, 0, len(models))
	for _, m := range models {
		items = append(items, domain.NewRegisteredModel(t.p.ID, m))
	}
	return page(items, lp, domain.RegisteredModelSortKeys, "name", "registered models")
}

func (t target) registeredModel(ctx context.Context, name string) (domain.RegisteredModel, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return domain.RegisteredModel{}, errs.Invalidf("a registered model name is required")
	}
	m, err := t.c.GetRegisteredModel(ctx, name)
	if err != nil {
		return domain.RegisteredModel{}, t.mlflowErr(err)
	}
	return domain.NewRegisteredModel(t.p.ID, m), nil
}

// GetRegisteredModel returns one registered model by name.
func (s *Service) GetRegisteredModel(ctx context.Context, project, name string) (domain.RegisteredModel, error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.RegisteredModel{}, err
	}
	return t.registeredModel(ctx, name)
}

// ModelInput is the body of POST /registered-models: a name and where the
// new version's files are, either a model URI (source) or a run and the
// artifact path of the model folder in it.
type ModelInput struct {
	ProjectID    string            `json:"project_id"`
	Name         string            `json:"name"`
	Description  string            `json:"description"`
	Source       string            `json:"source"`
	RunID        string            `json:"run_id"`
	ArtifactPath string            `json:"artifact_path"`
	Path         string            `json:"path"` // alias of artifact_path
	Tags         map[string]string `json:"tags"`
}

// DefaultModelPath is the artifact path of the model when only run_id is
// given, where mlflow.<flavor>.log_model puts it by convention.
const DefaultModelPath = "model"

// CreateRegisteredModel creates the model if missing and, given a source
// or a run, adds a version, as the original mlpanel did. Without either it
// only creates the model, and an existing one is a conflict.
func (s *Service) CreateRegisteredModel(ctx context.Context, project string, in ModelInput) (domain.RegisteredModel, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" {
		return domain.RegisteredModel{}, errs.Invalidf("name is required: the registered model's name")
	}
	artifactPath := in.ArtifactPath
	if artifactPath == "" {
		artifactPath = in.Path
	}
	if artifactPath != "" && in.RunID == "" {
		return domain.RegisteredModel{}, errs.Invalidf("artifact_path needs run_id: the run whose artifacts hold the model")
	}
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.RegisteredModel{}, err
	}
	version := mc.VersionInput{Name: name, Source: strings.TrimSpace(in.Source), RunID: strings.TrimSpace(in.RunID)}
	if version.Source != "" {
		src, runID, err := t.resolveSource(ctx, version.Source)
		if err != nil {
			return domain.RegisteredModel{}, err
		}
		version.Source = src
		if version.RunID == "" {
			version.RunID = runID
		}
	}
	if version.RunID != "" {
		r, err := t.run(ctx, version.RunID, false)
		if err != nil {
			return domain.RegisteredModel{}, err
		}
		if version.Source == "" {
			if version.Source, err = t.modelSource(ctx, r, artifactPath); err != nil {
				return domain.RegisteredModel{}, err
			}
		}
	}
	version.ModelID = domain.LoggedModelID(version.Source)
	if err := t.checkModelSource(ctx, version.Source); err != nil {
		return domain.RegisteredModel{}, err
	}
	seq := t.lastSeq(ctx, name)
	var tags []mc.Tag
	for k, v := range in.Tags {
		tags = append(tags, mc.Tag{Key: k, Value: v})
	}
	_, err = t.c.CreateRegisteredModel(ctx, name, in.Description, tags)
	createdModel := err == nil
	switch {
	case err == nil:
	case mc.IsCode(err, mc.CodeAlreadyExists) && version.Source != "":
		// Adding a version to an existing model is the point.
	case mc.IsCode(err, mc.CodeAlreadyExists):
		return domain.RegisteredModel{}, errs.Conflictf("registered model %q already exists in project %s: give a source or run_id to add a version", name, t.p.Name)
	default:
		return domain.RegisteredModel{}, t.mlflowErr(err)
	}
	var created *domain.ModelVersion
	var createdAt int64
	if version.Source != "" {
		v, err := t.c.CreateModelVersion(ctx, version)
		if err != nil {
			if createdModel {
				// Leave no empty model behind a rejected source: the
				// caller asked for a version, not for the model alone.
				if derr := t.c.DeleteRegisteredModel(ctx, name); derr != nil {
					s.log.Warn("removing the model a failed registration created", "model", name, "err", derr)
				}
			}
			return domain.RegisteredModel{}, t.mlflowErr(err)
		}
		mv := domain.NewModelVersion(t.p.ID, v, nil)
		created, createdAt = &mv, v.CreationTimestamp
	}
	m, err := t.registeredModel(ctx, name)
	if err != nil {
		return domain.RegisteredModel{}, err
	}
	if createdModel {
		t.publish(ctx, events.ModelData{Name: m.Name}, events.ModelCreated, fmt.Sprint(m.CreationTimestamp), seq)
	}
	if created != nil {
		d := events.ModelData{Name: m.Name, Version: created.Version, Source: created.Source, RunID: created.RunID, Status: created.Status,
			Signature: t.signature(ctx, m.Name, created.Version)}
		id := []string{created.Version, fmt.Sprint(createdAt)}
		t.publish(ctx, d, events.ModelVersionCreated, id...)
		if created.Status == "READY" { // MLflow's SQL registry creates versions READY
			t.publish(ctx, d, events.ModelVersionReady, id...)
		}
	}
	m.CreatedVersion = created
	return m, nil
}

// modelSource is the artifact URI of the model folder at p in run r; the
// folder must hold an MLmodel file.
func (t target) modelSource(ctx context.Context, r domain.Run, p string) (string, error) {
	if p == "" {
		p = DefaultModelPath
	}
	p, err := cleanPath(p)
	if err != nil {
		return "", err
	}
	tr, rel, modelsDir, err := t.resolve(r, p)
	if err != nil {
		return "", err
	}
	switch {
	case modelsDir || (tr.modelID != "" && rel != ""):
		return "", errs.Invalidf("artifact_path %q is not a model folder: give %s/<model id> or a folder of the run's artifacts", p, domain.LoggedModelsDir)
	case tr.modelID != "":
		// An MLflow 3 logged model: register it by its own URI.
		return "models:/" + tr.modelID, nil
	}
	isModel, err := t.isModel(ctx, tr, rel)
	if err != nil {
		return "", err
	}
	if !isModel {
		return "", errs.Invalidf("run %s has no model at artifact path %q (no MLmodel file there): give artifact_path of the folder the model was logged to, or a source model URI such as models:/m-<id>", r.ID, p)
	}
	return strings.TrimRight(r.Info.ArtifactURI, "/") + "/" + p, nil
}

// DeleteRegisteredModel deletes a model and its versions (the registry has
// no soft delete) and returns it as it was.
func (s *Service) DeleteRegisteredModel(ctx context.Context, project, name string) (domain.RegisteredModel, error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.RegisteredModel{}, err
	}
	seq := t.lastSeq(ctx, name)
	m, err := t.registeredModel(ctx, name)
	if err != nil {
		return domain.RegisteredModel{}, err
	}
	if err := t.c.DeleteRegisteredModel(ctx, m.Name); err != nil {
		return domain.RegisteredModel{}, t.mlflowErr(err)
	}
	t.publish(ctx, events.ModelData{Name: m.Name}, events.ModelDeleted, fmt.Sprint(m.CreationTimestamp), seq)
	return m, nil
}

// ListModelVersions returns one page of the versions of one registered
// model, or of every model when modelID is empty.
func (s *Service) ListModelVersions(ctx context.Context, project, modelID string, lp events.ListParams) (events.List[domain.ModelVersion], error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return events.List[domain.ModelVersion]{}, err
	}
	modelID = strings.TrimSpace(modelID)
	if res, ok, err := s.directVersions(ctx, t, modelID, lp); ok {
		return res, err
	}
	// Searches leave aliases out; the models carry them.
	aliases := map[string][]mc.Alias{}
	filter := ""
	if modelID != "" {
		m, err := t.c.GetRegisteredModel(ctx, modelID)
		if err != nil {
			return events.List[domain.ModelVersion]{}, t.mlflowErr(err)
		}
		aliases[m.Name] = m.Aliases
		var ok bool
		if filter, ok = domain.NameFilter(modelID); !ok {
			return events.List[domain.ModelVersion]{}, errs.Invalidf("model_id %q holds both quote characters, which MLflow's search cannot express", modelID)
		}
	} else {
		models, err := t.c.SearchRegisteredModels(ctx, "")
		if err != nil {
			return events.List[domain.ModelVersion]{}, t.mlflowErr(err)
		}
		for _, m := range models {
			aliases[m.Name] = m.Aliases
		}
	}
	versions, err := t.c.SearchModelVersions(ctx, filter)
	if err != nil {
		return events.List[domain.ModelVersion]{}, t.mlflowErr(err)
	}
	items := make([]domain.ModelVersion, 0, len(versions))
	for _, v := range versions {
		items = append(items, domain.NewModelVersion(t.p.ID, v, domain.AliasesOf(aliases[v.Name], v.Version)))
	}
	return page(items, lp, domain.ModelVersionSortKeys, "id", "model versions")
}

func (t target) modelVersion(ctx context.Context, modelID, version string) (domain.ModelVersion, error) {
	modelID, version = strings.TrimSpace(modelID), strings.TrimSpace(version)
	if modelID == "" {
		return domain.ModelVersion{}, errs.Invalidf("model_id is required: the registered model's name")
	}
	if !domain.ValidVersion(version) {
		return domain.ModelVersion{}, errs.Invalidf("version %q: want a version number such as 1", version)
	}
	v, err := t.c.GetModelVersion(ctx, modelID, version)
	if err != nil {
		return domain.ModelVersion{}, t.mlflowErr(err)
	}
	return domain.NewModelVersion(t.p.ID, v, nil), nil
}

// GetModelVersion returns one version of a registered model.
func (s *Service) GetModelVersion(ctx context.Context, project, modelID, version string) (domain.ModelVersion, error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.ModelVersion{}, err
	}
	return t.modelVersion(ctx, modelID, version)
}

// DeleteModelVersion deletes one version and returns it as it was.
func (s *Service) DeleteModelVersion(ctx context.Context, project, modelID, version string) (domain.ModelVersion, error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.ModelVersion{}, err
	}
	seq := t.lastSeq(ctx, strings.TrimSpace(modelID))
	v, err := t.modelVersion(ctx, modelID, version)
	if err != nil {
		return domain.ModelVersion{}, err
	}
	if err := t.c.DeleteModelVersion(ctx, v.ModelID, v.Version); err != nil {
		return domain.ModelVersion{}, t.mlflowErr(err)
	}
	// MLflow drops the version's aliases with it.
	for _, a := range v.Aliases {
		t.publish(ctx, events.ModelData{Name: v.ModelID, Alias: a, PreviousVersion: v.Version},
			events.ModelAliasDeleted, a, v.Version, seq)
	}
	return v, nil
}

// SetAlias points alias at the version (moving it from another version of
// the model) and returns the version.
func (s *Service) SetAlias(ctx context.Context, project, modelID, version, alias string) (domain.ModelVersion, error) {
	alias = strings.TrimSpace(alias)
	if alias == "" {
		return domain.ModelVersion{}, errs.Invalidf("an alias is required, e.g. champion")
	}
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.ModelVersion{}, err
	}
	seq := t.lastSeq(ctx, strings.TrimSpace(modelID))
	v, err := t.modelVersion(ctx, modelID, version)
	if err != nil {
		return domain.ModelVersion{}, err
	}
	// Where the alias pointed before, for the event.
	prev, known := "", false
	if m, err := t.c.GetRegisteredModel(ctx, v.ModelID); err == nil {
		known = true
		for _, a := range m.Aliases {
			if a.Alias == alias {
				prev = a.Version
			}
		}
	}
	if err := t.c.SetAlias(ctx, v.ModelID, alias, v.Version); err != nil {
		return domain.ModelVersion{}, t.mlflowErr(err)
	}
	if !known || prev != v.Version { // setting it where it points changes nothing
		t.publish(ctx, events.ModelData{Name: v.ModelID, Alias: alias, Version: v.Version, PreviousVersion: prev},
			events.ModelAliasSet, alias, v.Version, prev, seq)
	}
	return t.modelVersion(ctx, v.ModelID, v.Version)
}

// RemoveAlias removes alias from the version; an alias the version does
// not carry is a 404 (MLflow would silently remove it from another).
func (s *Service) RemoveAlias(ctx context.Context, project, modelID, version, alias string) (domain.ModelVersion, error) {
	t, err := s.open(ctx, project)
	if err != nil {
		return domain.ModelVersion{}, err
	}
	seq := t.lastSeq(ctx, strings.TrimSpace(modelID))
	v, err := t.modelVersion(ctx, modelID, version)
	if err != nil {
		return domain.ModelVersion{}, err
	}
	found := false
	for _, a := range v.Aliases {
		found = found || a == alias
	}
	if !found {
		have := "none"
		if len(v.Aliases) > 0 {
			have = strings.Join(v.Aliases, ", ")
		}
		return domain.ModelVersion{}, errs.NotFoundf("version %s of model %q has no alias %q (its aliases: %s)", v.Version, v.ModelID, alias, have)
	}
	if err := t.c.DeleteAlias(ctx, v.ModelID, alias); err != nil {
		return domain.ModelVersion{}, t.mlflowErr(err)
	}
	t.publish(ctx, events.ModelData{Name: v.ModelID, Alias: alias, PreviousVersion: v.Version},
		events.ModelAliasDeleted, alias, v.Version, seq)
	return t.modelVersion(ctx, v.ModelID, v.Version)
}

// checkModelSource refuses a logged-model source this project does not
// have before MLflow sees it: MLflow answers one (another project's logged
// model) with a 500 "Unable to fetch model from model URI source".
// Registry notations were resolved before (resolveSource).
func (t target) checkModelSource(ctx context.Context, source string) error {
	id := domain.LoggedModelID(source)
	if id == "" {
		return nil
	}
	_, err := t.c.GetLoggedModel(ctx, id)
	if mc.IsCode(err, mc.CodeNotFound) {
		return errs.Invalidf("source %q: project %s has no logged model %s: a version's source must be a model logged in this project (a run's models show under @models/ in GET /artifacts)", source, t.p.Name, id)
	}
	return t.mlflowErr(err)
}
