package mlflowdb

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/tracking/app"
)

// mlflowVersion is a model version as MLflow's own client reads it.
type mlflowVersion struct {
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Aliases   []string          `json:"aliases"`
	Tags      map[string]string `json:"tags"`
	ModelTags map[string]string `json:"model_tags"`
}

// registryOf asks MLflow's own client (its store code on the database,
// no server) for every model version with its aliases and tags.
func registryOf(t *testing.T, dir string) []mlflowVersion {
	t.Helper()
	script := `import json, sys
from mlflow import MlflowClient
uri = "sqlite:///" + sys.argv[1]
c = MlflowClient(tracking_uri=uri, registry_uri=uri)
models = {}
out = []
for v in c.search_model_versions(max_results=10000):
    if v.name not in models:
        models[v.name] = c.get_registered_model(v.name).tags
    full = c.get_model_version(v.name, v.version)  # search leaves aliases out
    out.append(dict(name=v.name, version=str(v.version), aliases=list(full.aliases), tags=full.tags, model_tags=models[v.name]))
print(json.dumps(out))
`
	venv := filepath.Join(repoRoot(t), ".venv", "bin")
	cmd := exec.Command(filepath.Join(venv, "python"), "-c", script, DBPath(dir))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reading the registry with MLflow's client: %v", err)
	}
	var vs []mlflowVersion
	if err := json.Unmarshal(out, &vs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return vs
}

// TestSearchModelsAgreesWithMLflow: GET /search/models over two projects'
// registries (filled by MLflow's own store code: names with LIKE's
// wildcards and differing case, aliases, tags on models and versions,
// deleted versions, a prompt) answers what MLflow's own client finds in
// each, filtered by name, alias and tag and merged by model name, project
// and version (newest first), with the true total.
func TestSearchModelsAgreesWithMLflow(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rd := New(log)
	defer rd.Close()
	cat := &catalogOf{}
	var regs [][]mlflowVersion
	for i := 0; i < 2; i++ {
		dir := t.TempDir()
		fillModels(t, dir, 24, 4, 40+i)
		cat.projects = append(cat.projects, app.Project{ID: fmt.Sprint(i + 1), Name: fmt.Sprintf("reg-%d", i+1), Status: "sleeping", Path: dir})
		regs = append(regs, registryOf(t, dir))
	}
	// A project never started has no database yet: nothing to find, and
	// nothing to wake (the runs search below checks the same).
	cat.projects = append(cat.projects, app.Project{ID: "3", Name: "never-started", Status: "created", Path: t.TempDir()})
	svc := app.New(cat, nil, log, func() int64 { return 1 })
	search := app.NewSearch(svc, cat, rd)
	like := func(p, s string) bool { return handLike(p, s) }
	queries := []app.ModelQuery{{}, {Alias: "champion"}, {Alias: "@b-side"}, {Name: "iris%"}, {Name: "Iris-0001"}, {Name: "50%off%"},
		{Tag: "team=vision"}, {Tag: "validated"}, {Tag: "validated=yes", Alias: "champion"}, {Name: "%a%", Tag: "team"}, {Name: "nope"}, {Alias: "nope"},
		{Name: "a-prompt"}, {Projects: "reg-2", Alias: "champion"}}
	for _, q := range queries {
		var want []string
		for p, reg := range regs {
			if q.Projects != "" && q.Projects != cat.projects[p].Name {
				continue
			}
			for _, v := range reg {
				alias := strings.TrimPrefix(q.Alias, "@")
				if q.Name != "" && !(v.Name == q.Name || strings.Contains(q.Name, "%") && like(q.Name, v.Name)) {
					continue
				}
				if alias != "" && !contains(v.Aliases, alias) {
					continue
				}
				if q.Tag != "" {
					k, val, hasVal := strings.Cut(q.Tag, "=")
					mv, inModel := v.ModelTags[k]
					vv, inVersion := v.Tags[k]
					if !(inModel && (!hasVal || mv == val) || inVersion && (!hasVal || vv == val)) {
						continue
					}
				}
				want = append(want, fmt.Sprintf("%s|%d|%s", v.Name, p+1, v.Version))
			}
		}
		sort.Slice(want, func(a, b int) bool {
			x, y := strings.Split(want[a], "|"), strings.Split(want[b], "|")
			if x[0] != y[0] {
				return x[0] < y[0]
			}
			if x[1] != y[1] {
				return x[1] < y[1]
			}
			vx, _ := strconv.Atoi(x[2])
			vy, _ := strconv.Atoi(y[2])
			return vx > vy
		})
		for _, w := range [][2]int{{0, 0}, {3, 9}} {
			got, err := search.SearchModels(context.Background(), events.Request{}, q, events.ListParams{Start: w[0], End: w[1]})
			if err != nil {
				t.Errorf("%+v: %v", q, err)
				continue
			}
			var ids []string
			for _, v := range got.Items {
				ids = append(ids, fmt.Sprintf("%s|%s|%s", v.Name, v.ProjectID, v.Version))
				m := regs[must(strconv.Atoi(v.ProjectID))-1]
				for _, x := range m {
					if x.Name == v.Name && x.Version == v.Version {
						tags := map[string]string{}
						for _, tg := range v.Tags {
							tags[tg.Key] = tg.Value
						}
						mtags := map[string]string{}
						for _, tg := range v.ModelTags {
							mtags[tg.Key] = tg.Value
						}
						if len(x.Tags) == 0 {
							x.Tags = map[string]string{}
						}
						if len(x.ModelTags) == 0 {
							x.ModelTags = map[string]string{}
						}
						sort.Strings(x.Aliases)
						al := append([]string{}, v.Aliases...)
						sort.Strings(al)
						if !reflect.DeepEqual(tags, x.Tags) || !reflect.DeepEqual(mtags, x.ModelTags) || fmt.Sprint(al) != fmt.Sprint(x.Aliases) {
							t.Errorf("%+v: %s/%s: tags %v model tags %v aliases %v; MLflow: %+v", q, v.Name, v.Version, tags, mtags, al, x)
						}
					}
				}
			}
			lo, hi := min(w[0], len(want)), len(want)
			if w[1] > 0 {
				hi = min(w[1], len(want))
			} else {
				hi = min(lo+app.DefaultSearchPage, len(want))
			}
			if fmt.Sprint(ids) != fmt.Sprint(want[lo:hi]) || got.Total != len(want) {
				t.Errorf("%+v window %v:\n got %v (total %d)\nwant %v (total %d)", q, w, ids, got.Total, want[lo:hi], len(want))
			}
		}
	}
	runs, err := search.SearchRuns(context.Background(), events.Request{}, app.SearchQuery{Projects: "never-started", OrderBy: "metrics.a DESC"}, events.ListParams{})
	if err != nil || len(runs.Items) != 0 || runs.Total != 0 {
		t.Errorf("runs of a project never started: %+v %v, want none", runs, err)
	}
	board, err := search.SearchRuns(context.Background(), events.Request{}, app.SearchQuery{OrderBy: "metrics.a DESC", GroupBy: "experiment_name"}, events.ListParams{})
	if err != nil || board.Total != 0 {
		t.Errorf("leaderboard of registries without runs: %+v %v", board, err)
	}
	if len(cat.woken) > 0 {
		t.Errorf("the model searches woke %v", cat.woken)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func must(n int, err error) int {
	if err != nil {
		panic(err)
	}
	return n
}
