package mlflowdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// fillModels adds a model registry to a fixture's database with
// gen_models.py (MLflow's own store code); the server reads it per call.
func fillModels(t testing.TB, dir string, models, perModel, seed int) {
	t.Helper()
	venv := filepath.Join(repoRoot(t), ".venv", "bin")
	gen := exec.Command(filepath.Join(venv, "python"), filepath.Join("testdata", "gen_models.py"), DBPath(dir),
		fmt.Sprint(models), fmt.Sprint(perModel), fmt.Sprint(seed))
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("filling the registry: %v\n%s", err, out)
	}
}

// canonical is the JSON of v with tags in key order: MLflow's tag order
// is its table's, which nothing promises and mlpanel shows as a map.
func canonical(v any) string {
	switch x := v.(type) {
	case []mc.RegisteredModel:
		for i := range x {
			sortTags(x[i].Tags)
			for j := range x[i].LatestVersions {
				sortTags(x[i].LatestVersions[j].Tags)
			}
		}
	case []mc.ModelVersion:
		for i := range x {
			sortTags(x[i].Tags)
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRegistryAsMLflowSendsIt compares the registry reads with MLflow's
// own registered-models/search and model-versions/search (every page)
// on generated registry data: the same models and versions in the same
// order with the same fields, latest versions, aliases and tags, for
// every name filter the SQL path translates, and windows of both.
func TestRegistryAsMLflowSendsIt(t *testing.T) {
	fx := newFixture(t, 5, 7)
	fillModels(t, fx.dir, 40, 6, 7)
	ctx := context.Background()
	rd := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer rd.Close()
	c := mc.New(fx.url, &http.Client{Timeout: time.Minute})

	filters := []string{"", "name = 'iris-0000'", `name = "wine-0002"`, "name LIKE 'iris%'", "name ILIKE 'iris%'",
		"name != 'wine-0002'", "name LIKE '50%'", "name LIKE 'model_a%'", "name ILIKE '%CNN%'", "name = 'nope'", "name = 'a-prompt'"}
	aliasesOf := map[string][]mc.Alias{}
	for _, f := range filters {
		want, err := c.SearchRegisteredModels(ctx, f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if f == "" {
			if len(want) < 30 {
				t.Fatalf("the fixture holds %d models", len(want))
			}
			for _, m := range want {
				aliasesOf[m.Name] = m.Aliases
			}
		}
		got, err := rd.RegisteredModels(ctx, fx.dir, f, false, 0, 0)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if g, w := canonical(got.Models), canonical(want); g != w || got.Total != len(want) {
			t.Errorf("registered models %q (total %d, want %d):\n got %s\nwant %s", f, got.Total, len(want), g, w)
		}
		// A reversed window.
		slices.Reverse(want)
		lo, hi := min(2, len(want)), min(7, len(want))
		got, err = rd.RegisteredModels(ctx, fx.dir, f, true, 2, 5)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := canonical(got.Models), canonical(want[lo:hi]); g != w && hi > lo || got.Total != len(want) {
			t.Errorf("registered models %q DESC [2,7):\n got %s\nwant %s", f, g, w)
		}
	}

	for _, model := range []string{"", "iris-0000", "Iris-0001", "50%off-0005", "a-prompt"} {
		filter := ""
		if model != "" {
			filter = "name='" + model + "'"
		}
		want, err := c.SearchModelVersions(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range want {
			for _, a := range aliasesOf[v.Name] {
				if a.Version == v.Version {
					want[i].Aliases = append(want[i].Aliases, a.Alias)
				}
			}
		}
		got, err := rd.ModelVersions(ctx, fx.dir, model, false, false, 0, 0)
		if err != nil {
			t.Fatalf("versions of %q: %v", model, err)
		}
		if g, w := canonical(got.Versions), canonical(want); g != w || got.Total != len(want) {
			t.Errorf("versions of %q (total %d, want %d):\n got %s\nwant %s", model, got.Total, len(want), g, w)
		}
		if model == "" && len(want) < 60 {
			t.Errorf("the fixture holds %d versions", len(want))
		}
		// By id: (name, version), a window of it.
		slices.SortStableFunc(want, func(a, b mc.ModelVersion) int {
			if a.Name != b.Name {
				return cmpStr(a.Name, b.Name)
			}
			return len(a.Version)*1000 - len(b.Version)*1000 + cmpStr(a.Version, b.Version)
		})
		lo, hi := min(3, len(want)), min(9, len(want))
		got, err = rd.ModelVersions(ctx, fx.dir, model, true, false, 3, 6)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := canonical(got.Versions), canonical(want[lo:hi]); g != w && hi > lo {
			t.Errorf("versions of %q by id [3,9):\n got %s\nwant %s", model, g, w)
		}
	}

	// What the SQL path does not translate, MLflow answers.
	for _, f := range []string{"tags.team = 'nlp'", "name IN ('iris-0000')", "name = 'a' AND name = 'b'", "name LIKE iris"} {
		if _, err := rd.RegisteredModels(ctx, fx.dir, f, false, 0, 0); !errors.Is(err, ErrFallback) {
			t.Errorf("filter %q: got %v, want ErrFallback", f, err)
		}
	}
	if _, err := rd.ModelVersions(ctx, fx.dir, "nope", true, false, 0, 0); !errors.Is(err, ErrFallback) {
		t.Errorf("versions of a missing model: got %v, want ErrFallback (MLflow's 404)", err)
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
