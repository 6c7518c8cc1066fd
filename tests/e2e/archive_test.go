package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// archiveLog logs what the round trip must carry: params, tags, a metric
// history, binary and nested artifacts; the model comes from train.py.
const archiveLog = `import mlflow, os, tempfile
mlflow.set_experiment("archive-e2e")
with mlflow.start_run(run_name="carried") as run:
    mlflow.log_params({"alpha": "0.5", "layers": "3"})
    mlflow.set_tags({"team": "move", "note": "ünïcode"})
    for step in range(25):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("acc", step / 25.0, step=step)
    d = tempfile.mkdtemp()
    os.makedirs(os.path.join(d, "deep", "er"))
    with open(os.path.join(d, "blob.bin"), "wb") as f:
        f.write(bytes(range(256)) * 4099)
    with open(os.path.join(d, "deep", "er", "notes.txt"), "w") as f:
        f.write("carried across panels")
    mlflow.log_artifacts(d, artifact_path="data")
    print("run_id=" + run.info.run_id)
`

// TestProjectArchiveRoundTrip exports a running project, imports it into
// a second panel and compares both projects through MLflow's own REST
// APIs, then checks the stock client downloads artifacts and loads the
// registered model by alias there. It also covers clone, the owner-only
// rules, and archives that must be refused without leaving anything.
func TestProjectArchiveRoundTrip(t *testing.T) {
	src := runningProject(t, "archive-src")
	runID := depLine(t, python(t, archiveLog, "MLFLOW_TRACKING_URI="+src.MlflowURI), "run_id=")
	depTrain(t, src, "iris-arch")
	expect(t, mlflowAPI(t, src, http.MethodPost, "registered-models/alias",
		map[string]string{"name": "iris-arch", "alias": "champion", "version": "1"}), http.StatusOK)

	// Export while the server runs.
	r := call(t, http.MethodGet, "/projects/"+src.ID+"/export", nil)
	expect(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "application/gzip" {
		t.Errorf("export Content-Type %q, want application/gzip", ct)
	}
	if cd := r.Header.Get("Content-Disposition"); !strings.Contains(cd, "archive-src-") {
		t.Errorf("export Content-Disposition %q, want the project's name", cd)
	}
	archiveBytes := r.Body
	names := tarNames(t, archiveBytes)
	if names[0] != "export.json" || names[len(names)-1] != "manifest.json" || !contains(names, "mlflow.db") {
		t.Fatalf("archive entries %v: want export.json first, mlflow.db, manifest.json last", names)
	}
	var meta struct {
		MlflowVersion  string          `json:"mlflowVersion"`
		SchemaRevision string          `json:"schemaRevision"`
		Deployments    json.RawMessage `json:"deployments"`
		Project        struct{ Name string }
	}
	if err := json.Unmarshal(tarEntry(t, archiveBytes, "export.json"), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.MlflowVersion == "" || meta.SchemaRevision == "" || meta.Project.Name != "archive-src" || !strings.HasPrefix(string(meta.Deployments), "[") {
		t.Errorf("export.json %+v: want the MLflow version, schema revision, project and its deployment definitions", meta)
	}
	if left, _ := os.ReadDir(filepath.Join(panelCfg.Home, "exports")); len(left) > 0 {
		t.Errorf("the export left %d staging entries behind", len(left))
	}

	// Import into a second panel with auth on: the importer owns the copy.
	tp := startArchivePanel(t)
	alice := tp.newUser(t, "alice", false)
	// Auth is on: the imported project's mlflowUri is the gateway's proxy.
	mlflowTokens.Store(tp.URL, alice)
	t.Cleanup(func() { mlflowTokens.Delete(tp.URL) })
	bob := tp.newUser(t, "bob", false)
	imp := tp.upload(t, alice, "/projects/import?name=archive-dst", archiveBytes)
	expect(t, imp, http.StatusCreated)
	var dst struct {
		project
		CreatedBy string `json:"createdBy"`
		Path      string `json:"path"`
	}
	imp.JSON(t, &dst)
	if dst.Name != "archive-dst" || dst.CreatedBy != "alice" || dst.Status != "terminated" {
		t.Fatalf("imported project %+v: want archive-dst owned by alice, terminated", dst)
	}
	expect(t, tp.as(t, alice, http.MethodPut, "/projects/"+dst.ID+"/run", nil), http.StatusOK)
	deadline := time.Now().Add(3 * time.Minute)
	for tp.projectStatus(t, dst.ID) != "running" {
		if time.Now().After(deadline) {
			t.Fatalf("imported project never ran: %s", tp.as(t, alice, http.MethodGet, "/projects/"+dst.ID, nil).Body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	r = tp.as(t, alice, http.MethodGet, "/projects/"+dst.ID, nil)
	r.JSON(t, &dst)

	// The differential check: every answer of both MLflow servers alike.
	compareProjects(t, src, dst.project, runID)

	// The stock client, against the imported project only.
	out := python(t, `import mlflow, hashlib, json, pandas as pd
p = mlflow.artifacts.download_artifacts(run_id="`+runID+`", artifact_path="data/blob.bin")
print("SHA=" + hashlib.sha256(open(p, "rb").read()).hexdigest())
m = mlflow.pyfunc.load_model("models:/iris-arch@champion")
cols = m.metadata.get_input_schema().input_names()
pred = m.predict(pd.DataFrame([[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]], columns=cols))
print("PRED=" + json.dumps([x.item() if hasattr(x, "item") else x for x in pred], separators=(",", ":")))
`, "MLFLOW_TRACKING_URI="+dst.MlflowURI, "MLFLOW_TRACKING_TOKEN="+alice)
	want := python(t, `import hashlib; print("SHA=" + hashlib.sha256(bytes(range(256)) * 4099).hexdigest())`)
	if depLine(t, out, "SHA=") != depLine(t, want, "SHA=") {
		t.Errorf("the stock client downloaded different artifact bytes from the imported project")
	}
	if got := depLine(t, out, "PRED="); got == "" || got == "[]" {
		t.Errorf("no predictions from the imported model: %s", out)
	}

	// The imported model deploys and serves the same predictions.
	r = tp.as(t, alice, http.MethodPost, "/deployments", map[string]any{"project_id": dst.ID, "model_id": "iris-arch", "version": "1", "type": "local"})
	expect(t, r, http.StatusAccepted)
	var dep deployment
	r.JSON(t, &dep)
	t.Cleanup(func() { tp.as(t, tp.admin, http.MethodDelete, "/deployments/"+dep.ID, nil) })
	for dep.Status != "running" {
		if time.Now().After(deadline.Add(4 * time.Minute)) {
			t.Fatalf("the imported model's deployment never ran: %+v", dep)
		}
		time.Sleep(time.Second)
		tp.as(t, alice, http.MethodGet, "/deployments/"+dep.ID, nil).JSON(t, &dep)
	}
	r = tp.as(t, alice, http.MethodPost, "/deployments/"+dep.ID+"/predict", map[string]any{"dataframe_split": map[string]any{
		"columns": dep.InputColumns, "data": [][]float64{{5.1, 3.5, 1.4, 0.2}, {7.7, 3.0, 6.1, 2.3}}}})
	expect(t, r, http.StatusOK)
	var served struct {
		Predictions []any `json:"predictions"`
	}
	r.JSON(t, &served)
	if got, _ := json.Marshal(served.Predictions); string(got) != depLine(t, out, "PRED=") {
		t.Errorf("the deployed imported model predicts %s, the stock client %s", got, depLine(t, out, "PRED="))
	}
	expect(t, tp.as(t, alice, http.MethodDelete, "/deployments/"+dep.ID, nil), http.StatusOK)

	// Owner-only: bob may neither export nor clone alice's project, and
	// learns nothing about it; alice may clone it.
	expect(t, tp.as(t, bob, http.MethodGet, "/projects/"+dst.ID+"/export", nil), http.StatusNotFound)
	expect(t, tp.as(t, bob, http.MethodPost, "/projects/"+dst.ID+"/clone", map[string]string{"name": "stolen"}), http.StatusNotFound)
	expect(t, tp.as(t, bob, http.MethodPost, "/projects/import", map[string]string{"path": "/etc/passwd"}), http.StatusForbidden)
	cl := tp.as(t, alice, http.MethodPost, "/projects/"+dst.ID+"/clone", map[string]string{"name": "archive-clone"})
	expect(t, cl, http.StatusCreated)
	var clone project
	cl.JSON(t, &clone)
	expect(t, tp.as(t, alice, http.MethodPut, "/projects/"+clone.ID+"/run", nil), http.StatusOK)
	for tp.projectStatus(t, clone.ID) != "running" {
		if time.Now().After(deadline.Add(3 * time.Minute)) {
			t.Fatal("the clone never ran")
		}
		time.Sleep(500 * time.Millisecond)
	}
	r = tp.as(t, alice, http.MethodGet, "/projects/"+clone.ID, nil)
	r.JSON(t, &clone)
	compareProjects(t, dst.project, clone, runID)
	for _, id := range []string{dst.ID, clone.ID} {
		tp.as(t, tp.admin, http.MethodPut, "/projects/"+id+"/terminate", nil)
	}

	// Members travel by user name: bob (viewer) and carol (editor) of
	// alice's project are in its export; imported again on a panel where
	// bob exists and carol no longer does, bob is a viewer of the copy and
	// carol is reported skipped with what to do.
	tp.newUser(t, "carol", false)
	expect(t, tp.as(t, alice, http.MethodPut, "/projects/"+dst.ID+"/members/bob", map[string]string{"role": "viewer"}), http.StatusOK)
	expect(t, tp.as(t, alice, http.MethodPut, "/projects/"+dst.ID+"/members/carol", map[string]string{"role": "editor"}), http.StatusOK)
	r = tp.as(t, alice, http.MethodGet, "/projects/"+dst.ID+"/export", nil)
	expect(t, r, http.StatusOK)
	withMembers := r.Body
	var exported struct {
		Members []struct{ User, Role string } `json:"members"`
	}
	if err := json.Unmarshal(tarEntry(t, withMembers, "export.json"), &exported); err != nil {
		t.Fatal(err)
	}
	sort.Slice(exported.Members, func(i, j int) bool { return exported.Members[i].User < exported.Members[j].User })
	if fmt.Sprint(exported.Members) != "[{bob viewer} {carol editor}]" {
		t.Errorf("export.json members %v, want bob (viewer) and carol (editor)", exported.Members)
	}
	expect(t, tp.as(t, tp.admin, http.MethodDelete, "/users/carol", nil), http.StatusOK)
	imp = tp.upload(t, alice, "/projects/import?name=archive-members", withMembers)
	expect(t, imp, http.StatusCreated)
	var withM struct {
		project
		Members struct {
			Restored []struct{ User, Role string }
			Skipped  []struct{ User, Role, Reason string }
		} `json:"members"`
	}
	imp.JSON(t, &withM)
	if fmt.Sprint(withM.Members.Restored) != "[{bob viewer}]" || len(withM.Members.Skipped) != 1 ||
		withM.Members.Skipped[0].User != "carol" || !strings.Contains(withM.Members.Skipped[0].Reason, "POST /users") {
		t.Errorf("import's members report %+v: want bob restored, carol skipped saying how to add her", withM.Members)
	}
	var ms []struct{ User, Role string }
	tp.as(t, alice, http.MethodGet, "/projects/"+withM.ID+"/members", nil).JSON(t, &ms)
	if fmt.Sprint(ms) != "[{alice owner} {bob viewer}]" {
		t.Errorf("members of the imported copy %v, want alice (owner) and bob (viewer)", ms)
	}
	expect(t, tp.as(t, bob, http.MethodGet, "/projects/"+withM.ID, nil), http.StatusOK)

	// Refused archives: 400, no project, nothing left in the data home.
	before := countProjects(t)
	dirs := readProjectDirs(t)
	for name, bad := range badArchives(t, archiveBytes) {
		r := call(t, http.MethodPost, "/projects/import?name=bad-one", bad, "application/gzip")
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s archive: status %d, want 400; %s", name, r.Status, r.Body)
			continue
		}
		t.Logf("%s archive: %s", name, r.Message())
	}
	if n := countProjects(t); n != before {
		t.Errorf("refused archives created %d projects", n-before)
	}
	if after := readProjectDirs(t); !reflect.DeepEqual(after, dirs) {
		t.Errorf("refused archives left files: before %v, after %v", dirs, after)
	}
	if left, _ := os.ReadDir(filepath.Join(panelCfg.Home, "imports")); len(left) > 0 {
		t.Errorf("refused archives left %d entries in imports/", len(left))
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func tarEntry(t *testing.T, b []byte, name string) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no %s in the archive: %v", name, err)
		}
		if h.Name == name {
			out, _ := io.ReadAll(tr)
			return out
		}
	}
}

func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// readProjectDirs lists the shared panel's project folders.
func readProjectDirs(t *testing.T) []string {
	var out []string
	ents, _ := os.ReadDir(filepath.Join(panelCfg.Home, "projects"))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// badArchives are the good archive spoiled in every way an import must
// refuse: cut, flipped bytes, another MLflow's schema, escaping entries.
func badArchives(t *testing.T, good []byte) map[string][]byte {
	corrupt := append([]byte(nil), good...)
	for i := len(corrupt) / 3; i < len(corrupt)/3+64; i++ {
		corrupt[i] ^= 0x5a
	}
	entries := map[string][]byte{}
	gz, _ := gzip.NewReader(bytes.NewReader(good))
	tr := tar.NewReader(gz)
	var order []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(tr)
		entries[h.Name] = b
		order = append(order, h.Name)
	}
	rebuild := func(edit func(tw *tar.Writer, name string, b []byte) bool, extra ...tar.Header) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for _, h := range extra {
			h := h
			_ = tw.WriteHeader(&h)
			if h.Size > 0 {
				_, _ = tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			}
		}
		for _, n := range order {
			if edit != nil && edit(tw, n, entries[n]) {
				continue
			}
			_ = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(entries[n])), Typeflag: tar.TypeReg})
			_, _ = tw.Write(entries[n])
		}
		_ = tw.Close()
		_ = zw.Close()
		return buf.Bytes()
	}
	// A newer MLflow's schema: a revision this panel's MLflow does not
	// know, with a manifest that vouches for it (a consistent archive).
	future := func() []byte {
		dir := t.TempDir()
		db := filepath.Join(dir, "mlflow.db")
		if err := os.WriteFile(db, entries["mlflow.db"], 0o644); err != nil {
			t.Fatal(err)
		}
		python(t, `import sqlite3; c = sqlite3.connect("`+db+`"); c.execute("UPDATE alembic_version SET version_num='ffffffffffff'"); c.commit()`)
		b, _ := os.ReadFile(db)
		entries2 := map[string][]byte{}
		for k, v := range entries {
			entries2[k] = v
		}
		entries2["mlflow.db"] = b
		var buf bytes.Buffer
		w := newTestArchive(&buf)
		for _, n := range order {
			if n != "manifest.json" {
				w.add(n, entries2[n])
			}
		}
		w.close()
		return buf.Bytes()
	}
	return map[string][]byte{
		"truncated":           good[:len(good)/2],
		"corrupted":           corrupt,
		"wrong MLflow schema": future(),
		"dot-dot":             rebuild(nil, tar.Header{Name: "artifacts/../../../escaped", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg}),
		"absolute":            rebuild(nil, tar.Header{Name: "/tmp/escaped", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg}),
		"symlink":             rebuild(nil, tar.Header{Name: "artifacts/link", Linkname: "/etc", Typeflag: tar.TypeSymlink}),
		"no manifest":         rebuild(func(tw *tar.Writer, n string, b []byte) bool { return n == "manifest.json" }),
		"not an archive":      []byte("this is not a tarball"),
	}
}

// compareProjects is the differential check: the same MLflow REST calls
// on both servers answer the same JSON, and every artifact the same bytes.
func compareProjects(t *testing.T, a, b project, runID string) {
	t.Helper()
	same := func(method, path string, body any) map[string]any {
		t.Helper()
		ra, rb := mlflowAPI(t, a, method, path, body), mlflowAPI(t, b, method, path, body)
		var ja, jb map[string]any
		_ = json.Unmarshal(ra.Body, &ja)
		_ = json.Unmarshal(rb.Body, &jb)
		if ra.Status != http.StatusOK || rb.Status != http.StatusOK || !reflect.DeepEqual(ja, jb) {
			t.Errorf("%s %s differs:\n%d %s\n%d %s", method, path, ra.Status, trim(ra.Body), rb.Status, trim(rb.Body))
		}
		return ja
	}
	exps := same(http.MethodPost, "experiments/search", map[string]any{"max_results": 1000})
	var expIDs []string
	for _, e := range list(exps["experiments"]) {
		expIDs = append(expIDs, fmt.Sprint(e["experiment_id"]))
	}
	runs := same(http.MethodPost, "runs/search", map[string]any{"experiment_ids": expIDs, "max_results": 1000})
	if len(list(runs["runs"])) < 2 {
		t.Errorf("only %d runs compared, want the logged and the trained one", len(list(runs["runs"])))
	}
	same(http.MethodPost, "logged-models/search", map[string]any{"experiment_ids": expIDs})
	for _, run := range list(runs["runs"]) {
		info := run["info"].(map[string]any)
		id := fmt.Sprint(info["run_id"])
		data, _ := run["data"].(map[string]any)
		for _, m := range list(data["metrics"]) {
			h := same(http.MethodGet, "metrics/get-history?run_id="+id+"&metric_key="+fmt.Sprint(m["key"]), nil)
			if id == runID && m["key"] == "loss" && len(list(h["metrics"])) != 25 {
				t.Errorf("loss history has %d points, want 25", len(list(h["metrics"])))
			}
		}
		compareArtifacts(t, a, b, id, strings.TrimPrefix(fmt.Sprint(info["artifact_uri"]), "mlflow-artifacts:/"), "")
	}
	models := same(http.MethodGet, "registered-models/search?max_results=1000", nil)
	for _, m := range list(models["registered_models"]) {
		got := same(http.MethodGet, "registered-models/get?name="+fmt.Sprint(m["name"]), nil)
		if m["name"] == "iris-arch" && !strings.Contains(fmt.Sprint(got), "champion") {
			t.Errorf("the alias champion did not survive: %v", got)
		}
	}
	same(http.MethodGet, "model-versions/search?max_results=1000", nil)
}

func compareArtifacts(t *testing.T, a, b project, runID, root, dir string) {
	t.Helper()
	q := "artifacts/list?run_id=" + runID
	if dir != "" {
		q += "&path=" + dir
	}
	ra, rb := mlflowAPI(t, a, http.MethodGet, q, nil), mlflowAPI(t, b, http.MethodGet, q, nil)
	if !bytes.Equal(ra.Body, rb.Body) {
		t.Errorf("artifact listing %s differs:\n%s\n%s", q, trim(ra.Body), trim(rb.Body))
		return
	}
	var l struct {
		Files []struct {
			Path  string `json:"path"`
			IsDir bool   `json:"is_dir"`
		} `json:"files"`
	}
	_ = json.Unmarshal(ra.Body, &l)
	for _, f := range l.Files {
		if f.IsDir {
			compareArtifacts(t, a, b, runID, root, f.Path)
			continue
		}
		ba, bb := artifactBytes(t, a, root+"/"+f.Path), artifactBytes(t, b, root+"/"+f.Path)
		if ba == nil || !bytes.Equal(ba, bb) {
			t.Errorf("artifact %s of run %s differs (%d vs %d bytes)", f.Path, runID, len(ba), len(bb))
		}
	}
}

func artifactBytes(t *testing.T, p project, path string) []byte {
	r := mlflowRaw(t, p, http.MethodGet, "/api/2.0/mlflow-artifacts/artifacts/"+path, nil)
	if r.Status != http.StatusOK {
		return nil
	}
	return r.Body
}

func list(v any) []map[string]any {
	var out []map[string]any
	for _, x := range asSlice(v) {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func trim(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// startArchivePanel is a second panel, with auth on, for the import side.
func startArchivePanel(t *testing.T) *teamPanel {
	t.Helper()
	cfg := panelCfg
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Deployer.Home = cfg.Home
	cfg.Projects.Ports = proc.Range{Lo: 15150, Hi: 15159}
	cfg.Projects.StopOnExit = true
	cfg.Gateway.Addr = "127.0.0.1:15191"
	cfg.Gateway.Auth = true
	cfg.Gateway.AdminToken = "mlp_admin-token-for-archive-tests"
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); assertSpec(t, s) })
	return &teamPanel{Stack: s, admin: cfg.Gateway.AdminToken}
}

// upload posts an archive as the body.
func (tp *teamPanel) upload(t *testing.T, token, path string, archive []byte) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, tp.URL+path, bytes.NewReader(archive))
	req.Header.Set("Content-Type", "application/gzip")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}
