package e2e

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

// TestTrackingRegistry: POST /registered-models creates a model if
// missing and adds a version from a run's model folder or a source URI;
// versions have one id in lists and gets; aliases are set and removed;
// deletes remove.
func TestTrackingRegistry(t *testing.T) {
	f := trkSetup(t)
	const name = "trk-registry"
	pq := func(kv ...string) url.Values { return trkQ(append([]string{"project_id", f.p.ID}, kv...)...) }
	post := func(body map[string]any) response {
		return call(t, http.MethodPost, "/registered-models?project_id="+f.p.Name, body)
	}

	// From a run: the default artifact path "model" holds the MLmodel.
	r := post(map[string]any{"name": name, "run_id": f.exampleRun, "description": "e2e registry"})
	expect(t, r, http.StatusCreated)
	var m trkModel
	r.JSON(t, &m)
	if m.ID != name || m.Description != "e2e registry" || m.CreatedVersion == nil || m.CreatedVersion.Version != "1" ||
		m.CreatedVersion.RunID != f.exampleRun || m.CreatedVersion.ID != name+"/1" {
		t.Fatalf("created %s", trkJSON(m))
	}
	run := trkMLflowRun(t, f.p, f.exampleRun)
	if m.CreatedVersion.Source != run.Info.ArtifactURI+"/model" {
		t.Fatalf("source %q, want %q", m.CreatedVersion.Source, run.Info.ArtifactURI+"/model")
	}
	// Again, as a form with an explicit path: the model exists, version 2.
	r = call(t, http.MethodPost, "/registered-models", url.Values{"project_id": {f.p.ID}, "name": {name}, "run_id": {f.exampleRun}, "artifact_path": {"model"}}.Encode(),
		"application/x-www-form-urlencoded")
	expect(t, r, http.StatusCreated)
	r.JSON(t, &m)
	if m.CreatedVersion == nil || m.CreatedVersion.Version != "2" {
		t.Fatalf("second POST %s", trkJSON(m))
	}
	// From a source URI: the logged model of the example's registered version.
	var example trkVersion
	trkGet(t, "/model-versions/1", pq("model_id", f.modelName), http.StatusOK).JSON(t, &example)
	r = post(map[string]any{"name": name, "source": example.Source, "run_id": f.exampleRun})
	expect(t, r, http.StatusCreated)
	r.JSON(t, &m)
	if m.CreatedVersion == nil || m.CreatedVersion.Version != "3" || m.CreatedVersion.Source != example.Source {
		t.Fatalf("POST with source %s", trkJSON(m))
	}

	// From a run's MLflow 3 logged model, by its path in the artifact listing.
	top, _ := trkList[trkArtifact](t, "/artifacts", pq("run_id", f.exampleRun))
	lm := trkMustFind(t, top, "the logged model", func(a trkArtifact) bool { return a.LoggedModelID != "" })
	r = post(map[string]any{"name": "trk-logged", "run_id": f.exampleRun, "artifact_path": lm.Path})
	expect(t, r, http.StatusCreated)
	var logged trkModel
	r.JSON(t, &logged)
	if logged.CreatedVersion == nil || logged.CreatedVersion.Source != "models:/"+lm.LoggedModelID {
		t.Fatalf("registered from the logged model: %s", trkJSON(logged))
	}
	expect(t, call(t, http.MethodDelete, "/registered-models/trk-logged?project_id="+f.p.ID, nil), http.StatusOK)

	trkExpectError(t, post(map[string]any{"name": name}), http.StatusConflict, "already exists")
	trkExpectError(t, post(map[string]any{"run_id": f.exampleRun}), http.StatusBadRequest, "name is required")
	trkExpectError(t, post(map[string]any{"name": name, "run_id": f.exampleRun, "artifact_path": "reports"}), http.StatusBadRequest, "no MLmodel")
	trkExpectError(t, post(map[string]any{"name": name, "run_id": f.exampleRun, "artifact_path": "../model"}), http.StatusBadRequest, "..")
	trkExpectError(t, post(map[string]any{"name": name, "run_id": "0123456789abcdef0123456789abcdef"}), http.StatusNotFound, "not found")

	// A source MLflow refuses leaves no empty model behind.
	r = post(map[string]any{"name": "trk-bad-source", "source": "file:///etc"})
	if r.Status != http.StatusBadRequest && r.Status != http.StatusNotFound {
		t.Fatalf("bad source: status %d, want 400 or 404; body %s", r.Status, r.Body)
	}
	trkGet(t, "/registered-models/trk-bad-source", pq(), http.StatusNotFound)

	byFilter, n := trkList[trkModel](t, "/registered-models", pq("filter", "name LIKE 'trk-reg%'"))
	if n != 1 || byFilter[0].ID != name {
		t.Fatalf("filter name LIKE 'trk-reg%%': %s", trkJSON(byFilter))
	}
	versions, total := trkList[trkVersion](t, "/model-versions", pq("model_id", name))
	if total != 3 || len(versions) != 3 || versions[0].ID != name+"/1" || versions[2].ID != name+"/3" {
		t.Fatalf("versions %s (total %d)", trkJSON(versions), total)
	}
	page, total := trkList[trkVersion](t, "/model-versions", pq("model_id", name, "_sort", "version", "_order", "DESC", "_end", "1"))
	if total != 3 || len(page) != 1 || page[0].Version != "3" {
		t.Fatalf("newest version page %s", trkJSON(page))
	}
	for _, v := range versions {
		var one trkVersion
		trkGet(t, "/model-versions/"+v.Version, pq("model_id", name), http.StatusOK).JSON(t, &one)
		if !reflect.DeepEqual(one, v) || one.ModelURI != "models:/"+name+"/"+v.Version {
			t.Fatalf("get %+v\nlist %+v", one, v)
		}
	}
	// Every model's versions when model_id is left out.
	every, _ := trkList[trkVersion](t, "/model-versions", pq())
	trkMustFind(t, every, "the example's version", func(v trkVersion) bool { return v.ID == f.modelName+"/1" })

	// Aliases.
	r = call(t, http.MethodPut, "/model-versions/2/aliases/champion?project_id="+f.p.ID+"&model_id="+name, nil)
	expect(t, r, http.StatusOK)
	var v2 trkVersion
	r.JSON(t, &v2)
	if !reflect.DeepEqual(v2.Aliases, []string{"champion"}) {
		t.Fatalf("aliases after set: %v", v2.Aliases)
	}
	listed, _ := trkList[trkVersion](t, "/model-versions", pq("model_id", name))
	if got := trkMustFind(t, listed, "version 2", func(v trkVersion) bool { return v.Version == "2" }); !reflect.DeepEqual(got.Aliases, []string{"champion"}) {
		t.Fatalf("listed aliases %v", got.Aliases)
	}
	trkGet(t, "/registered-models/"+name, pq(), http.StatusOK).JSON(t, &m)
	if len(m.Aliases) != 1 || m.Aliases[0].Alias != "champion" || m.Aliases[0].Version != "2" {
		t.Fatalf("model aliases %+v", m.Aliases)
	}
	trkExpectError(t, call(t, http.MethodPut, "/model-versions/2/aliases/latest?project_id="+f.p.ID+"&model_id="+name, nil), http.StatusBadRequest, "reserved")
	trkExpectError(t, call(t, http.MethodDelete, "/model-versions/1/aliases/champion?project_id="+f.p.ID+"&model_id="+name, nil), http.StatusNotFound, "no alias")
	r = call(t, http.MethodDelete, "/model-versions/2/aliases/champion?project_id="+f.p.ID+"&model_id="+name, nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &v2)
	if len(v2.Aliases) != 0 {
		t.Fatalf("aliases after remove: %v", v2.Aliases)
	}

	// Deletes (the registry has no soft delete).
	expect(t, call(t, http.MethodDelete, "/model-versions/3?project_id="+f.p.ID+"&model_id="+name, nil), http.StatusOK)
	trkExpectError(t, trkGet(t, "/model-versions/3", pq("model_id", name), http.StatusNotFound), http.StatusNotFound, "not found")
	if _, total := trkList[trkVersion](t, "/model-versions", pq("model_id", name)); total != 2 {
		t.Fatalf("after deleting version 3: total %d", total)
	}
	r = call(t, http.MethodDelete, "/registered-models/"+name+"?project_id="+f.p.ID, nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &m)
	if m.ID != name {
		t.Fatalf("delete answered %s", trkJSON(m))
	}
	trkExpectError(t, trkGet(t, "/registered-models/"+name, pq(), http.StatusNotFound), http.StatusNotFound, "not found")
	trkExpectError(t, trkGet(t, "/model-versions", pq("model_id", name), http.StatusNotFound), http.StatusNotFound, "not found")
	models, _ := trkList[trkModel](t, "/registered-models", pq())
	if _, ok := trkFind(models, func(x trkModel) bool { return x.ID == name }); ok {
		t.Fatalf("deleted model still listed")
	}
}
