package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
)

// trkPageSize makes the tracking service walk MLflow's page tokens with
// a handful of runs instead of thousands.
const trkPageSize = 5

func init() {
	serviceConfigurers = append(serviceConfigurers, func(cfg *stack.Config, home string) {
		cfg.Tracking.PageSize = trkPageSize
	})
}

// trkFixture is what the tracking tests share: one running project, the
// example ML project run against it, and objects made directly with the
// mlflow client. Starting an MLflow server and training take a while, so
// it is built once, by the first test that needs it.
type trkFixture struct {
	p          project
	exampleRun string // run id of examples/train.py
	exampleExp string // its experiment id, made by the mlflow client
	modelName  string // the model the example registered

	timedExp   string // external experiment with runs of known times
	emptyExp   string // external experiment without runs
	firstStart int64
	lastEnd    int64
}

var (
	trkOnce sync.Once
	trk     *trkFixture
	trkErr  string
)

const trkTimedScript = `
import mlflow
from mlflow import MlflowClient
c = MlflowClient()
exp = c.create_experiment("trk-timed")
a = c.create_run(exp, start_time=1600000000000)
c.set_terminated(a.info.run_id, end_time=1600000100000)
b = c.create_run(exp, start_time=1600000050000)
c.set_terminated(b.info.run_id, end_time=1600000300000)
r = c.create_run(exp, start_time=1600000200000)
empty = c.create_experiment("trk-empty")
print("timed=" + exp)
print("empty=" + empty)
`

func trkSetup(t *testing.T) *trkFixture {
	t.Helper()
	trkOnce.Do(func() {
		// The first test builds it; if that fails (t.Fatal ends the
		// goroutine, the deferred call still runs), every later test says
		// so instead of reading a half-built fixture.
		built := false
		defer func() {
			if !built {
				trkErr = "the tracking fixture failed to build in " + t.Name() + "; see its output"
			}
		}()
		f := &trkFixture{modelName: "trk-iris"}
		f.p = runningProject(t, "trk-main")
		out := trkExample(t, f.p, "--experiment", "trk-example", "--model-name", f.modelName, "--epochs", "5")
		f.exampleRun = trkLine(t, out, "run_id=")
		out = python(t, trkTimedScript, "MLFLOW_TRACKING_URI="+f.p.MlflowURI)
		f.timedExp = trkLine(t, out, "timed=")
		f.emptyExp = trkLine(t, out, "empty=")
		f.firstStart, f.lastEnd = 1600000000000, 1600000300000
		f.exampleExp = trkMLflowRun(t, f.p, f.exampleRun).Info.ExperimentID
		trk, built = f, true
	})
	if trk == nil {
		t.Fatal(trkErr)
	}
	return trk
}

// trkExample runs examples/train.py against a project and returns its
// standard output.
func trkExample(t *testing.T, p project, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, ".venv", "bin", "python"),
		append([]string{filepath.Join(repoRoot, "examples", "train.py")}, args...)...)
	cmd.Env = append(os.Environ(), "MLFLOW_TRACKING_URI="+p.MlflowURI,
		"GIT_PYTHON_REFRESH=quiet", "MLFLOW_ENABLE_ASYNC_LOGGING=false")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("examples/train.py: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	t.Logf("examples/train.py took %s", time.Since(start).Round(time.Second))
	return out.String()
}

// trkLine is the value of the last output line starting with prefix.
func trkLine(t *testing.T, out, prefix string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), prefix); ok {
			return v
		}
	}
	t.Fatalf("no %q line in output:\n%s", prefix, out)
	return ""
}

// trkGet calls GET path with query parameters and expects status.
func trkGet(t *testing.T, path string, q url.Values, status int) response {
	t.Helper()
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	r := call(t, http.MethodGet, path, nil)
	expect(t, r, status)
	return r
}

// trkList fetches a list and checks that X-Total-Count is a number.
func trkList[T any](t *testing.T, path string, q url.Values) ([]T, int) {
	t.Helper()
	r := trkGet(t, path, q, http.StatusOK)
	total, err := strconv.Atoi(r.Header.Get("X-Total-Count"))
	if err != nil {
		t.Fatalf("GET %s: X-Total-Count %q: %v", path, r.Header.Get("X-Total-Count"), err)
	}
	var items []T
	r.JSON(t, &items)
	return items, total
}

// trkQ builds query parameters from pairs.
func trkQ(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// trkExpectError checks an error answer: status, {"code": "<status>"} and
// a message containing want.
func trkExpectError(t *testing.T, r response, status int, want string) {
	t.Helper()
	expect(t, r, status)
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	r.JSON(t, &e)
	if e.Code != strconv.Itoa(status) {
		t.Fatalf("error code %q, want %d; body %s", e.Code, status, r.Body)
	}
	if !strings.Contains(e.Message, want) {
		t.Fatalf("error message %q does not say %q", e.Message, want)
	}
}

// Shapes of mlpanel's answers, as far as the tests read them.
type trkExperiment struct {
	ID                    string            `json:"id"`
	ProjectID             string            `json:"project_id"`
	Name                  string            `json:"name"`
	Description           string            `json:"description"`
	ArtifactLocation      string            `json:"artifact_location"`
	LifecycleStage        string            `json:"lifecycle_stage"`
	CreationTime          int64             `json:"creation_time"`
	LastUpdateTime        int64             `json:"last_update_time"`
	Tags                  map[string]string `json:"tags"`
	UserID                string            `json:"user_id"`
	RunCount              int               `json:"run_count"`
	CreatedThroughMlpanel bool              `json:"created_through_mlpanel"`
}

type trkKV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type trkMetric struct {
	Key       string  `json:"key"`
	Value     float64 `json:"value"`
	Timestamp int64   `json:"timestamp"`
	Step      int64   `json:"step"`
}

type trkRun struct {
	ID        string `json:"id"`
	ProjectID string `json:"project_id"`
	Info      struct {
		RunID          string `json:"run_id"`
		RunName        string `json:"run_name"`
		ExperimentID   string `json:"experiment_id"`
		Status         string `json:"status"`
		StartTime      int64  `json:"start_time"`
		EndTime        int64  `json:"end_time"`
		ArtifactURI    string `json:"artifact_uri"`
		LifecycleStage string `json:"lifecycle_stage"`
	} `json:"info"`
	Data struct {
		Metrics []trkMetric `json:"metrics"`
		Params  []trkKV     `json:"params"`
		Tags    []trkKV     `json:"tags"`
	} `json:"data"`
	Outputs json.RawMessage `json:"outputs"`
}

type trkArtifact struct {
	ID            string `json:"id"`
	RunID         string `json:"run_id"`
	Path          string `json:"path"`
	Name          string `json:"name"`
	Type          string `json:"type"`
	Size          int64  `json:"size"`
	LoggedModelID string `json:"logged_model_id"`
}

type trkVersion struct {
	ID          string   `json:"id"`
	ProjectID   string   `json:"project_id"`
	ModelID     string   `json:"model_id"`
	Version     string   `json:"version"`
	RunID       string   `json:"run_id"`
	Source      string   `json:"source"`
	ModelURI    string   `json:"model_uri"`
	Status      string   `json:"status"`
	Aliases     []string `json:"aliases"`
	CreationTS  int64    `json:"creation_timestamp"`
	LastUpdated int64    `json:"last_updated_timestamp"`
}

type trkModel struct {
	ID             string       `json:"id"`
	ProjectID      string       `json:"project_id"`
	Name           string       `json:"name"`
	Description    string       `json:"description"`
	LatestVersions []trkVersion `json:"latest_versions"`
	Aliases        []struct {
		Alias   string `json:"alias"`
		Version string `json:"version"`
	} `json:"aliases"`
	CreationTS     int64       `json:"creation_timestamp"`
	CreatedVersion *trkVersion `json:"created_version"`
}

// trkMLflowRun is MLflow's own answer for a run, to compare with.
func trkMLflowRun(t *testing.T, p project, id string) trkRun {
	t.Helper()
	var got struct {
		Run trkRun `json:"run"`
	}
	r := mlflowAPI(t, p, http.MethodGet, "runs/get?run_id="+id, nil)
	expect(t, r, http.StatusOK)
	r.JSON(t, &got)
	got.Run.Outputs = trkCompact(got.Run.Outputs)
	return got.Run
}

// trkCompact drops the white space MLflow indents its JSON with, so raw
// parts compare with what mlpanel re-encodes.
func trkCompact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if len(raw) == 0 || json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

func trkJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func trkFind[T any](items []T, match func(T) bool) (T, bool) {
	for _, it := range items {
		if match(it) {
			return it, true
		}
	}
	var zero T
	return zero, false
}

func trkMustFind[T any](t *testing.T, items []T, what string, match func(T) bool) T {
	t.Helper()
	it, ok := trkFind(items, match)
	if !ok {
		t.Fatalf("%s not found in %s", what, trkJSON(items))
	}
	return it
}
