package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"testing"
)

// TestTrackingExampleObjects: after the example ML project ran against a
// project (with the mlflow client, outside mlpanel), every endpoint
// returns what MLflow holds.
func TestTrackingExampleObjects(t *testing.T) {
	f := trkSetup(t)
	pq := func(kv ...string) url.Values { return trkQ(append([]string{"project_id", f.p.Name}, kv...)...) }

	t.Run("experiments", func(t *testing.T) {
		exps, total := trkList[trkExperiment](t, "/experiments", pq())
		if total != len(exps) {
			t.Fatalf("X-Total-Count %d, %d items", total, len(exps))
		}
		e := trkMustFind(t, exps, "experiment trk-example", func(e trkExperiment) bool { return e.Name == "trk-example" })
		if e.ID != f.exampleExp || e.ProjectID != f.p.ID || e.RunCount != 1 || e.LifecycleStage != "active" || e.CreatedThroughMlpanel {
			t.Fatalf("experiment %+v: want id %s, project %s, one run, active, made outside mlpanel", e, f.exampleExp, f.p.ID)
		}
		// Made outside mlpanel with one finished run: the run's times.
		run := trkMLflowRun(t, f.p, f.exampleRun)
		if e.CreationTime != run.Info.StartTime || e.LastUpdateTime != run.Info.EndTime {
			t.Fatalf("times %d..%d, want the run's %d..%d", e.CreationTime, e.LastUpdateTime, run.Info.StartTime, run.Info.EndTime)
		}
		// The same by id (and by project id instead of name).
		var got trkExperiment
		trkGet(t, "/experiments/"+e.ID, trkQ("project_id", f.p.ID), http.StatusOK).JSON(t, &got)
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("get %+v\nlist %+v", got, e)
		}
		var mlf struct {
			Experiment struct {
				Name             string `json:"name"`
				ArtifactLocation string `json:"artifact_location"`
			} `json:"experiment"`
		}
		mlflowAPI(t, f.p, http.MethodGet, "experiments/get?experiment_id="+e.ID, nil).JSON(t, &mlf)
		if mlf.Experiment.Name != e.Name || mlf.Experiment.ArtifactLocation != e.ArtifactLocation {
			t.Fatalf("MLflow has %+v, mlpanel says %+v", mlf.Experiment, e)
		}
	})

	t.Run("runs", func(t *testing.T) {
		runs, total := trkList[trkRun](t, "/runs", pq("experiment_id", f.exampleExp))
		if total != 1 || len(runs) != 1 || runs[0].ID != f.exampleRun || runs[0].ProjectID != f.p.ID {
			t.Fatalf("runs of the example experiment: total %d, %s", total, trkJSON(runs))
		}
		var got trkRun
		trkGet(t, "/runs/"+f.exampleRun, pq(), http.StatusOK).JSON(t, &got)
		got.Outputs, runs[0].Outputs = trkCompact(got.Outputs), trkCompact(runs[0].Outputs)
		want := trkMLflowRun(t, f.p, f.exampleRun)
		want.ID, want.ProjectID = f.exampleRun, f.p.ID
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(runs[0], want) {
			t.Fatalf("mlpanel run %s\nlist %s\nMLflow run %s", trkJSON(got), trkJSON(runs[0]), trkJSON(want))
		}
		params := map[string]string{}
		for _, p := range got.Data.Params {
			params[p.Key] = p.Value
		}
		if params["epochs"] != "5" || params["learning_rate"] == "" {
			t.Fatalf("params %v: want epochs=5 and learning_rate", params)
		}
	})

	t.Run("metric history", func(t *testing.T) {
		r := trkGet(t, "/runs/"+f.exampleRun+"/metrics/test_accuracy", pq(), http.StatusOK)
		var got []trkMetric
		r.JSON(t, &got)
		var want struct {
			Metrics []trkMetric `json:"metrics"`
		}
		mlflowAPI(t, f.p, http.MethodGet, "metrics/get-history?run_id="+f.exampleRun+"&metric_key=test_accuracy", nil).JSON(t, &want)
		sort.SliceStable(want.Metrics, func(i, j int) bool { return want.Metrics[i].Step < want.Metrics[j].Step })
		if len(got) != 5 || !reflect.DeepEqual(got, want.Metrics) || r.Header.Get("X-Total-Count") != "5" {
			t.Fatalf("history %s (total %s)\nMLflow %s", trkJSON(got), r.Header.Get("X-Total-Count"), trkJSON(want.Metrics))
		}
		for i, m := range got {
			if m.Step != int64(i) || m.Key != "test_accuracy" || m.Timestamp == 0 {
				t.Fatalf("point %d: %+v", i, m)
			}
		}
		// A window, newest step first.
		page, total := trkList[trkMetric](t, "/runs/"+f.exampleRun+"/metrics/test_accuracy", pq("_sort", "step", "_order", "DESC", "_start", "1", "_end", "3"))
		if total != 5 || len(page) != 2 || page[0].Step != 3 || page[1].Step != 2 {
			t.Fatalf("window: total %d, %s", total, trkJSON(page))
		}
	})

	t.Run("artifacts", func(t *testing.T) {
		top, total := trkList[trkArtifact](t, "/artifacts", pq("run_id", f.exampleRun))
		types := map[string]string{}
		for _, a := range top {
			types[a.Path] = a.Type
		}
		// The run's own folders, and the MLflow 3 logged model that
		// log_model(name="model") stored beside them.
		run := trkMLflowRun(t, f.p, f.exampleRun)
		var outputs struct {
			ModelOutputs []struct {
				ModelID string `json:"model_id"`
			} `json:"model_outputs"`
		}
		json.Unmarshal(run.Outputs, &outputs)
		if len(outputs.ModelOutputs) != 1 {
			t.Fatalf("the example's run outputs %s: want one logged model", run.Outputs)
		}
		logged := "@models/" + outputs.ModelOutputs[0].ModelID
		if total != 3 || types["model"] != "Model" || types["reports"] != "Folder" || types[logged] != "Model" {
			t.Fatalf("top level %s (total %d): want model (Model), reports (Folder) and %s (Model)", trkJSON(top), total, logged)
		}
		lm := trkMustFind(t, top, logged, func(a trkArtifact) bool { return a.Path == logged })
		if lm.Name != "model" || lm.LoggedModelID != outputs.ModelOutputs[0].ModelID {
			t.Fatalf("logged model entry %+v", lm)
		}
		inLogged, _ := trkList[trkArtifact](t, "/artifacts", pq("run_id", f.exampleRun, "path", logged))
		trkMustFind(t, inLogged, "the logged model's MLmodel", func(a trkArtifact) bool { return a.Path == logged+"/MLmodel" && a.Type == "File" })
		r := trkGet(t, "/artifacts/content", pq("run_id", f.exampleRun, "path", logged+"/MLmodel"), http.StatusOK)
		direct, err := http.Get(f.p.MlflowURI + "/ajax-api/2.0/mlflow/logged-models/" + lm.LoggedModelID + "/artifacts/files?artifact_file_path=MLmodel")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(direct.Body)
		direct.Body.Close()
		if string(r.Body) != string(want) || r.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
			t.Fatalf("logged model's MLmodel: %d bytes, MLflow serves %d", len(r.Body), len(want))
		}
		trkExpectError(t, trkGet(t, "/artifacts", pq("run_id", f.exampleRun, "path", "@models/m-0000"), http.StatusNotFound), http.StatusNotFound, "logged no model")
		reports, _ := trkList[trkArtifact](t, "/artifacts", pq("run_id", f.exampleRun, "path", "reports"))
		got := map[string]string{}
		for _, a := range reports {
			got[a.Path] = a.Type
		}
		if !reflect.DeepEqual(got, map[string]string{"reports/summary.json": "File", "reports/data": "Folder"}) {
			t.Fatalf("reports/ holds %s", trkJSON(reports))
		}
		nested, _ := trkList[trkArtifact](t, "/artifacts", pq("run_id", f.exampleRun, "path", "reports/data/"))
		csv := trkMustFind(t, nested, "predictions.csv", func(a trkArtifact) bool { return a.Path == "reports/data/predictions.csv" })
		trkMustFind(t, nested, "samples folder", func(a trkArtifact) bool { return a.Path == "reports/data/samples" && a.Type == "Folder" })
		if csv.Type != "File" || csv.Size <= 0 || csv.Name != "predictions.csv" || csv.ID != csv.Path {
			t.Fatalf("predictions.csv entry %+v", csv)
		}
		deepest, _ := trkList[trkArtifact](t, "/artifacts", pq("run_id", f.exampleRun, "path", "reports/data/samples"))
		if len(deepest) != 2 {
			t.Fatalf("reports/data/samples holds %s", trkJSON(deepest))
		}
		model, _ := trkList[trkArtifact](t, "/artifacts", pq("run_id", f.exampleRun, "path", "model"))
		trkMustFind(t, model, "MLmodel", func(a trkArtifact) bool { return a.Path == "model/MLmodel" && a.Type == "File" })

		// The bytes equal what MLflow serves, with type and length.
		for _, c := range []struct{ path, ctype string }{
			{"reports/data/predictions.csv", "text/csv; charset=utf-8"},
			{"reports/summary.json", "application/json"},
			{"model/MLmodel", "application/yaml"},
		} {
			r := trkGet(t, "/artifacts/content", pq("run_id", f.exampleRun, "path", c.path), http.StatusOK)
			want := trkMLflowBytes(t, f.p, f.exampleRun, c.path)
			if string(r.Body) != string(want) {
				t.Fatalf("%s: downloaded %d bytes that differ from MLflow's %d", c.path, len(r.Body), len(want))
			}
			if r.Header.Get("Content-Type") != c.ctype || r.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
				t.Fatalf("%s: Content-Type %q, Content-Length %q; want %q, %d", c.path,
					r.Header.Get("Content-Type"), r.Header.Get("Content-Length"), c.ctype, len(want))
			}
		}
		// HEAD answers the same headers without the bytes.
		csvBytes := trkMLflowBytes(t, f.p, f.exampleRun, "reports/data/predictions.csv")
		head := call(t, http.MethodHead, "/artifacts/content?"+pq("run_id", f.exampleRun, "path", "reports/data/predictions.csv").Encode(), nil)
		if head.Status != http.StatusOK || len(head.Body) != 0 || head.Header.Get("Content-Length") != strconv.Itoa(len(csvBytes)) ||
			head.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
			t.Fatalf("HEAD: %d %v %d bytes", head.Status, head.Header, len(head.Body))
		}
		// A folder is listed, not downloaded; a missing file is a 404.
		trkExpectError(t, trkGet(t, "/artifacts/content", pq("run_id", f.exampleRun, "path", "reports/data"), http.StatusBadRequest), http.StatusBadRequest, "is a folder")
		trkExpectError(t, trkGet(t, "/artifacts/content", pq("run_id", f.exampleRun, "path", "reports/nope.txt"), http.StatusNotFound), http.StatusNotFound, "no artifact")
		trkExpectError(t, trkGet(t, "/artifacts", pq("run_id", f.exampleRun, "path", "reports/summary.json"), http.StatusBadRequest), http.StatusBadRequest, "is a file")
		trkExpectError(t, trkGet(t, "/artifacts", pq("run_id", f.exampleRun, "path", "nowhere"), http.StatusNotFound), http.StatusNotFound, "no artifact")
	})

	t.Run("registry", func(t *testing.T) {
		models, total := trkList[trkModel](t, "/registered-models", pq())
		m := trkMustFind(t, models, f.modelName, func(m trkModel) bool { return m.ID == f.modelName })
		if total != len(models) || m.Name != f.modelName || m.ProjectID != f.p.ID || len(m.LatestVersions) != 1 {
			t.Fatalf("model %s (total %d)", trkJSON(m), total)
		}
		var got trkModel
		trkGet(t, "/registered-models/"+f.modelName, pq(), http.StatusOK).JSON(t, &got)
		if got.ID != m.ID || got.CreationTS != m.CreationTS {
			t.Fatalf("get %s\nlist %s", trkJSON(got), trkJSON(m))
		}
		versions, total := trkList[trkVersion](t, "/model-versions", pq("model_id", f.modelName))
		if total != 1 || len(versions) != 1 {
			t.Fatalf("versions %s", trkJSON(versions))
		}
		v := versions[0]
		if v.ID != f.modelName+"/1" || v.ModelID != f.modelName || v.Version != "1" || v.RunID != f.exampleRun ||
			v.ModelURI != "models:/"+f.modelName+"/1" || v.Status != "READY" || v.Source == "" {
			t.Fatalf("version %+v", v)
		}
		var one trkVersion
		trkGet(t, "/model-versions/1", pq("model_id", f.modelName), http.StatusOK).JSON(t, &one)
		if !reflect.DeepEqual(one, v) {
			t.Fatalf("get %+v\nlist %+v", one, v)
		}
		var mlf struct {
			ModelVersion struct {
				Source string `json:"source"`
				RunID  string `json:"run_id"`
			} `json:"model_version"`
		}
		mlflowAPI(t, f.p, http.MethodGet, "model-versions/get?name="+f.modelName+"&version=1", nil).JSON(t, &mlf)
		if mlf.ModelVersion.Source != v.Source || mlf.ModelVersion.RunID != v.RunID {
			t.Fatalf("MLflow has %+v, mlpanel %+v", mlf.ModelVersion, v)
		}
	})
}

// trkMLflowBytes downloads an artifact straight from the tracking server.
func trkMLflowBytes(t *testing.T, p project, runID, path string) []byte {
	t.Helper()
	resp, err := http.Get(p.MlflowURI + "/get-artifact?" + url.Values{"run_uuid": {runID}, "path": {path}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("MLflow get-artifact %s: %d %v", path, resp.StatusCode, err)
	}
	return b
}
