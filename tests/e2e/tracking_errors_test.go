package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestTrackingErrors: every known failure is a clear 4xx (or 502/504 from
// the tracking server), never a 500.
func TestTrackingErrors(t *testing.T) {
	f := trkSetup(t)
	pq := func(kv ...string) url.Values { return trkQ(append([]string{"project_id", f.p.ID}, kv...)...) }

	t.Run("project", func(t *testing.T) {
		for _, path := range []string{"/experiments", "/runs", "/registered-models", "/model-versions"} {
			trkExpectError(t, trkGet(t, path, nil, http.StatusBadRequest), http.StatusBadRequest, "project_id is required")
			trkExpectError(t, trkGet(t, path, trkQ("project_id", "no-such-project"), http.StatusNotFound), http.StatusNotFound, "not found")
		}
		stopped := createProject(t, "trk-stopped")
		for _, path := range []string{"/experiments", "/runs", "/registered-models"} {
			trkExpectError(t, trkGet(t, path, trkQ("project_id", stopped.Name), http.StatusConflict), http.StatusConflict,
				"start it with PUT /projects/"+stopped.ID+"/run")
		}
		trkExpectError(t, trkGet(t, "/artifacts/content", trkQ("project_id", stopped.ID, "run_id", f.exampleRun, "path", "a.txt"), http.StatusConflict),
			http.StatusConflict, "start it with PUT /projects/"+stopped.ID+"/run")
		trkExpectError(t, call(t, http.MethodPost, "/experiments", map[string]string{"project_id": stopped.ID, "name": "x"}), http.StatusConflict, "start it")
	})

	t.Run("mlflow", func(t *testing.T) {
		trkExpectError(t, trkGet(t, "/experiments/987654", pq(), http.StatusNotFound), http.StatusNotFound, "987654")
		trkExpectError(t, trkGet(t, "/experiments/abc", pq(), http.StatusBadRequest), http.StatusBadRequest, "must be a valid integer")
		trkExpectError(t, trkGet(t, "/runs/0123456789abcdef0123456789abcdef", pq(), http.StatusNotFound), http.StatusNotFound, "not found")
		trkExpectError(t, trkGet(t, "/runs", pq("experiment_id", "987654"), http.StatusNotFound), http.StatusNotFound, "987654")
		trkExpectError(t, trkGet(t, "/runs/"+f.exampleRun+"/metrics/no_such_metric", pq(), http.StatusNotFound), http.StatusNotFound, "test_accuracy")
		trkExpectError(t, trkGet(t, "/registered-models/no-such-model", pq(), http.StatusNotFound), http.StatusNotFound, "no-such-model")
		trkExpectError(t, trkGet(t, "/model-versions/1", pq("model_id", "no-such-model"), http.StatusNotFound), http.StatusNotFound, "no-such-model")
		trkExpectError(t, trkGet(t, "/model-versions/99", pq("model_id", f.modelName), http.StatusNotFound), http.StatusNotFound, "not found")
		trkExpectError(t, trkGet(t, "/model-versions/x", pq("model_id", f.modelName), http.StatusBadRequest), http.StatusBadRequest, "version number")
		trkExpectError(t, trkGet(t, "/model-versions/1", pq(), http.StatusBadRequest), http.StatusBadRequest, "model_id is required")
		trkExpectError(t, trkGet(t, "/registered-models", pq("filter", "name ~ 'x'"), http.StatusBadRequest), http.StatusBadRequest, "")
		trkExpectError(t, trkGet(t, "/artifacts", pq(), http.StatusBadRequest), http.StatusBadRequest, "run_id is required")
		trkExpectError(t, trkGet(t, "/artifacts", pq("run_id", "0123456789abcdef0123456789abcdef"), http.StatusNotFound), http.StatusNotFound, "not found")
		trkExpectError(t, trkGet(t, "/artifacts/content", pq("run_id", f.exampleRun), http.StatusBadRequest), http.StatusBadRequest, "path is required")

		// MLflow answers these with a 500 of its own; they are checked first.
		long := strings.Repeat("a", 10000)
		trkExpectError(t, trkGet(t, "/artifacts", pq("run_id", f.exampleRun, "path", long), http.StatusBadRequest), http.StatusBadRequest, "too long: at most 1024 bytes")
		trkExpectError(t, trkGet(t, "/artifacts/content", pq("run_id", f.exampleRun, "path", "d/"+strings.Repeat("b", 300)), http.StatusBadRequest), http.StatusBadRequest, "at most 255 bytes between slashes")
		register := func(source string) response {
			return call(t, http.MethodPost, "/registered-models?project_id="+f.p.ID, map[string]string{"name": "trk-bad-source", "source": source})
		}
		// A logged model id this project does not have (as another project's is).
		trkExpectError(t, register("models:/m-0123456789abcdef0123456789abcdef"), http.StatusBadRequest, "has no logged model m-0123456789abcdef0123456789abcdef")
		trkExpectError(t, register("models:/"+f.modelName+"/99"), http.StatusBadRequest, "has no version 99 of registered model")
		trkExpectError(t, register("models:/"), http.StatusBadRequest, "want models:/m-<logged model id>")
		// Nothing is left behind by a refused source.
		trkGet(t, "/registered-models/trk-bad-source", pq(), http.StatusNotFound)
	})

	t.Run("lists", func(t *testing.T) {
		trkExpectError(t, trkGet(t, "/experiments", pq("_sort", "colour"), http.StatusBadRequest), http.StatusBadRequest, "cannot sort experiments")
		trkExpectError(t, trkGet(t, "/experiments", pq("view", "sideways"), http.StatusBadRequest), http.StatusBadRequest, "view")
		trkExpectError(t, trkGet(t, "/registered-models", pq("_sort", "colour"), http.StatusBadRequest), http.StatusBadRequest, "cannot sort registered models")
		trkExpectError(t, trkGet(t, "/model-versions", pq("_sort", "colour"), http.StatusBadRequest), http.StatusBadRequest, "cannot sort model versions")
		trkExpectError(t, trkGet(t, "/artifacts", pq("run_id", f.exampleRun, "_sort", "colour"), http.StatusBadRequest), http.StatusBadRequest, "cannot sort artifacts")
		trkExpectError(t, trkGet(t, "/runs/"+f.exampleRun+"/metrics/test_loss", pq("_sort", "colour"), http.StatusBadRequest), http.StatusBadRequest, "cannot sort metric history")
		trkExpectError(t, trkGet(t, "/runs", pq("_start", "x"), http.StatusBadRequest), http.StatusBadRequest, "_start")
	})
}

// TestTrackingArtifactTraversal: paths that could leave the run's
// artifact folder are rejected with 400 before anything is read, on the
// listing and on the download, raw or encoded.
func TestTrackingArtifactTraversal(t *testing.T) {
	f := trkSetup(t)
	bad := []string{
		"..", "../", "../../etc/passwd", "reports/../../x", "reports/..", "/etc/passwd", "//etc/passwd",
		"%2e%2e/x", "%2E%2E%2Fx", "..%2fx", "reports%2f..%2f..%2fx", "%252e%252e%252fx", `..\x`, `reports\..\..\x`,
		"C:/Windows", "~/x", "reports/./data", "reports//data", "a\x00b",
	}
	for _, p := range bad {
		for _, path := range []string{"/artifacts", "/artifacts/content"} {
			r := trkGet(t, path, trkQ("project_id", f.p.ID, "run_id", f.exampleRun, "path", p), http.StatusBadRequest)
			trkExpectError(t, r, http.StatusBadRequest, "unsafe artifact path")
		}
	}
	// Raw encodings in the URL itself, past the client's own escaping.
	for _, raw := range []string{"..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fx", "%252e%252e%252f"} {
		r := call(t, http.MethodGet, "/artifacts/content?project_id="+f.p.ID+"&run_id="+f.exampleRun+"&path="+raw, nil)
		trkExpectError(t, r, http.StatusBadRequest, "unsafe artifact path")
	}
	// A name with dots that is not a traversal is fine.
	trkGet(t, "/artifacts", trkQ("project_id", f.p.ID, "run_id", f.exampleRun, "path", "reports"), http.StatusOK)
}
