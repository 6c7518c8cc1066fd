package domain

import (
	"errors"
	"testing"

	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

func TestTimeRule(t *testing.T) {
	e := mc.Experiment{ExperimentID: "1", Name: "e", CreationTime: 100, LastUpdateTime: 200, LifecycleStage: "active"}
	var runs RunTimes
	runs.Add(mc.RunInfo{Status: "FINISHED", StartTime: 1000, EndTime: 1500})
	runs.Add(mc.RunInfo{Status: "FAILED", StartTime: 900, EndTime: 1200})

	// Outside mlpanel, with runs: first start, last end.
	x := NewExperiment("7", e, runs)
	if x.CreationTime != 900 || x.LastUpdateTime != 1500 || x.RunCount != 2 || x.CreatedThroughMlpanel || x.ProjectID != "7" {
		t.Fatalf("external with runs: %+v", x)
	}
	// A run still running counts with its start, even with a stale end.
	runs.Add(mc.RunInfo{Status: "RUNNING", StartTime: 1700, EndTime: 0})
	if x = NewExperiment("7", e, runs); x.LastUpdateTime != 1700 {
		t.Fatalf("running run: last update %d, want 1700", x.LastUpdateTime)
	}
	runs.Add(mc.RunInfo{Status: "RUNNING", StartTime: 1600, EndTime: 9999})
	if x = NewExperiment("7", e, runs); x.LastUpdateTime != 1700 {
		t.Fatalf("running run with an end time: last update %d, want 1700", x.LastUpdateTime)
	}
	// Outside mlpanel, no runs: MLflow's times.
	if x = NewExperiment("7", e, RunTimes{}); x.CreationTime != 100 || x.LastUpdateTime != 200 {
		t.Fatalf("external empty: %+v", x)
	}
	// Through mlpanel: the recorded time, whatever the runs say.
	e.Tags = []mc.Tag{{Key: CreatedAtTag, Value: "150"}, {Key: DescriptionTag, Value: "d"}, {Key: CreatedByTag, Value: "ann"}}
	x = NewExperiment("7", e, runs)
	if !x.CreatedThroughMlpanel || x.CreationTime != 150 || x.LastUpdateTime != 200 || x.Description != "d" || x.UserID != "ann" {
		t.Fatalf("through mlpanel: %+v", x)
	}
	// A malformed tag is not a record: the external rule applies.
	e.Tags = []mc.Tag{{Key: CreatedAtTag, Value: "yesterday"}}
	if x = NewExperiment("7", e, runs); x.CreatedThroughMlpanel || x.CreationTime != 900 {
		t.Fatalf("malformed tag: %+v", x)
	}
}

func TestCleanArtifactPath(t *testing.T) {
	ok := map[string]string{
		"": "", "reports": "reports", "reports/": "reports", "reports/data/x.csv": "reports/data/x.csv",
		"a..b": "a..b", "..a": "..a", "100%.txt": "100%.txt", "my file.txt": "my file.txt", "a%2e%2eb": "a%2e%2eb",
	}
	for in, want := range ok {
		got, err := CleanArtifactPath(in)
		if err != nil || got != want {
			t.Errorf("CleanArtifactPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"..", "../x", "a/../b", "a/..", "/etc/passwd", "//x", `a\b`, "C:/x", "c:", "~/x", "./a", "a/./b", "a//b",
		"%2e%2e", "%2e%2e/x", "..%2fx", "%2fetc", "%252e%252e%252fx", "%25252e%25252e", "a%5c..%5cb", "a\x00b", "a\nb",
	} {
		if got, err := CleanArtifactPath(in); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("CleanArtifactPath(%q) = %q, %v; want ErrUnsafePath", in, got, err)
		}
	}
}

func TestContentType(t *testing.T) {
	for name, want := range map[string]string{
		"model/MLmodel":     "application/yaml",
		"a/summary.json":    "application/json",
		"p.CSV":             "text/csv; charset=utf-8",
		"notes.txt":         "text/plain; charset=utf-8",
		"conda.yaml":        "application/yaml",
		"plot.png":          "image/png",
		"model.pkl":         "application/octet-stream",
		"model.skops":       "application/octet-stream",
		"no-extension":      "application/octet-stream",
		"requirements.txt":  "text/plain; charset=utf-8",
		"page.html":         "text/html; charset=utf-8",
		"weird.unknownext1": "application/octet-stream",
	} {
		if got := ContentType(name); got != want {
			t.Errorf("ContentType(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestRegistryHelpers(t *testing.T) {
	for v, want := range map[string]bool{"1": true, "12": true, "0": false, "-1": false, "01": false, "x": false, "": false, "1.0": false} {
		if ValidVersion(v) != want {
			t.Errorf("ValidVersion(%q) != %v", v, want)
		}
	}
	for name, want := range map[string]string{"m": "name='m'", "it's": `name="it's"`, `a"b`: `name='a"b'`, `a'"b`: ""} {
		got, ok := NameFilter(name)
		if got != want || ok != (want != "") {
			t.Errorf("NameFilter(%q) = %q, %v", name, got, ok)
		}
	}
	for src, want := range map[string]string{"models:/m-abc": "m-abc", "models:/iris/1": "", "runs:/r/model": "", "models:/m-a/b": ""} {
		if got := LoggedModelID(src); got != want {
			t.Errorf("LoggedModelID(%q) = %q, want %q", src, got, want)
		}
	}
	v := NewModelVersion("3", mc.ModelVersion{Name: "iris", Version: "2", Source: "s"}, []string{"b", "a"})
	if v.ID != "iris/2" || v.ModelURI != "models:/iris/2" || v.ModelID != "iris" || v.Aliases[0] != "a" || v.Tags == nil {
		t.Fatalf("%+v", v)
	}
	m := NewRegisteredModel("3", mc.RegisteredModel{Name: "iris",
		LatestVersions: []mc.ModelVersion{{Name: "iris", Version: "2"}},
		Aliases:        []mc.Alias{{Alias: "champion", Version: "2"}, {Alias: "old", Version: "1"}}})
	if m.ID != "iris" || len(m.LatestVersions) != 1 || len(m.LatestVersions[0].Aliases) != 1 || m.LatestVersions[0].Aliases[0] != "champion" {
		t.Fatalf("%+v", m)
	}
}

func TestRunSortKeys(t *testing.T) {
	a := Run{ID: "a", Run: mc.Run{Data: mc.RunData{Metrics: []mc.Metric{{Key: "acc", Value: 0.5}}, Params: []mc.Tag{{Key: "p", Value: "x"}}}}}
	b := Run{ID: "b", Run: mc.Run{Data: mc.RunData{Metrics: []mc.Metric{{Key: "acc", Value: 0.9}}}}}
	none := Run{ID: "c"}
	less, ok := RunSortKey("metrics.acc")
	if !ok || !less(a, b) || less(b, a) || !less(none, a) || less(a, none) {
		t.Fatal("metrics.acc")
	}
	less, ok = RunSortKey("params.p")
	if !ok || !less(b, a) || less(a, b) {
		t.Fatal("params.p: a run without the param sorts first")
	}
	for _, k := range []string{"colour", "metrics.", "things.x"} {
		if _, ok := RunSortKey(k); ok {
			t.Errorf("RunSortKey(%q) accepted", k)
		}
	}
}

func TestLoggedModelPaths(t *testing.T) {
	for p, want := range map[string][3]string{
		"@models":               {"", "", "true"},
		"@models/m-1":           {"m-1", "", "true"},
		"@models/m-1/MLmodel":   {"m-1", "MLmodel", "true"},
		"@models/m-1/a/b.txt":   {"m-1", "a/b.txt", "true"},
		"models/m-1":            {"", "", "false"},
		"@modelsx/m-1":          {"", "", "false"},
		"reports/@models/m-1/x": {"", "", "false"},
	} {
		id, inside, ok := SplitLoggedModelPath(p)
		if id != want[0] || inside != want[1] || (ok != (want[2] == "true")) {
			t.Errorf("SplitLoggedModelPath(%q) = %q, %q, %v", p, id, inside, ok)
		}
	}
	if LoggedModelPath("m-1", "") != "@models/m-1" || LoggedModelPath("m-1", "MLmodel") != "@models/m-1/MLmodel" {
		t.Fatal("LoggedModelPath")
	}
	r := mc.Run{Outputs: []byte(`{"model_outputs": [{"model_id": "m-1", "step": 0}, {"model_id": "m-2"}, {"model_id": "m-1", "step": 3}]}`)}
	if got := r.ModelOutputs(); len(got) != 2 || got[0] != "m-1" || got[1] != "m-2" {
		t.Fatalf("ModelOutputs %v", got)
	}
	if got := (mc.Run{}).ModelOutputs(); len(got) != 0 {
		t.Fatalf("no outputs: %v", got)
	}
}
