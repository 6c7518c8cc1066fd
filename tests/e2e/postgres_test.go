package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/pgtest"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// TestPostgreSQLProject: a panel given MLPANEL_PROJECT_DB_URL (Debian's
// PostgreSQL, started by the test) creates a project with backend
// postgresql, runs its MLflow server on a database of its own, the stock
// client logs runs there, the panel's filtered run list and experiment
// list answer as MLflow does, and deleting the project drops the
// database. The main panel, which has no such server, refuses the
// backend with a 400 naming the setting.
func TestPostgreSQLProject(t *testing.T) {
	r := call(t, http.MethodPost, "/projects", map[string]string{"name": "pg-refused", "backend": "postgresql"})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Message(), "MLPANEL_PROJECT_DB_URL") {
		t.Fatalf("backend postgresql without a server: %d %s, want a 400 naming MLPANEL_PROJECT_DB_URL", r.Status, r.Body)
	}

	pg := pgtest.Start(t)
	cfg := panelCfg
	cfg.Home = t.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Deployer.Home = cfg.Home
	cfg.Projects.Ports = proc.Range{Lo: 15170, Hi: 15174}
	cfg.Projects.StopOnExit = true
	cfg.Gateway.Addr = "127.0.0.1:15195"
	cfg.Projects.ProjectDBURL = pg
	cfg.Tracking.ProjectDBURL = pg
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); assertSpec(t, s) })
	do := func(method, path string, body any) response {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, s.URL+path, rd)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	}
	type pgProject struct {
		project
		Backend  string `json:"backend"`
		Database string `json:"database"`
	}
	r = do(http.MethodPost, "/projects", map[string]string{"name": "pgp", "backend": "postgresql"})
	expect(t, r, http.StatusCreated)
	var p pgProject
	r.JSON(t, &p)
	if p.Backend != "postgresql" || p.Database == "" {
		t.Fatalf("created %s: want backend postgresql and its database", r.Body)
	}
	admin, err := sql.Open("pgx", pg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	databases := func() int {
		var n int
		if err := admin.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", p.Database).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if databases() != 1 {
		t.Fatalf("no database %s on the server", p.Database)
	}
	expect(t, do(http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		do(http.MethodGet, "/projects/"+p.ID, nil).JSON(t, &p)
		if p.Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("project is %s after 3 minutes (last error %q)", p.Status, p.LastError)
		}
		time.Sleep(300 * time.Millisecond)
	}

	python(t, `
import mlflow
mlflow.set_experiment("sweep")
for i in range(40):
    with mlflow.start_run(run_name="r%d" % i):
        mlflow.log_param("lr", ["0.01", "0.1"][i % 2])
        mlflow.log_metric("accuracy", i / 40)
`, "MLFLOW_TRACKING_URI="+p.MlflowURI)

	u, _ := neturl.Parse(pg)
	u.Path = "/" + p.Database
	projectDB, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer projectDB.Close()
	var runs int
	if err := projectDB.QueryRow("SELECT count(*) FROM runs").Scan(&runs); err != nil || runs != 40 {
		t.Fatalf("runs in database %s: %d, %v; want the 40 the client logged", p.Database, runs, err)
	}

	filter := "metrics.accuracy > 0.5 and params.lr = '0.01'"
	r = do(http.MethodGet, "/runs?project_id=pgp&_start=0&_end=5&filter="+neturl.QueryEscape(filter), nil)
	expect(t, r, http.StatusOK)
	var page []struct {
		ID string `json:"id"`
	}
	r.JSON(t, &page)
	// MLflow's own answer, from its server on the same database.
	var exps struct {
		Experiments []struct {
			ID   string `json:"experiment_id"`
			Name string `json:"name"`
		} `json:"experiments"`
	}
	resp, err := http.Post(p.MlflowURI+"/api/2.0/mlflow/experiments/search", "application/json", strings.NewReader(`{"max_results": 10}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&exps)
	resp.Body.Close()
	var ids []string
	for _, e := range exps.Experiments {
		ids = append(ids, e.ID)
	}
	body, _ := json.Marshal(map[string]any{"experiment_ids": ids, "filter": filter, "max_results": 100})
	resp, err = http.Post(p.MlflowURI+"/api/2.0/mlflow/runs/search", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Runs []struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"runs"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&want)
	resp.Body.Close()
	if total, _ := strconv.Atoi(r.Header.Get("X-Total-Count")); total != 9 || len(want.Runs) != 9 || len(page) != 5 {
		t.Fatalf("filtered runs: X-Total-Count %q, %d on the page, MLflow finds %d; want 9, 5, 9", r.Header.Get("X-Total-Count"), len(page), len(want.Runs))
	}
	for i := range page {
		if page[i].ID != want.Runs[i].Info.RunID {
			t.Fatalf("run %d of the page is %s, MLflow's is %s", i, page[i].ID, want.Runs[i].Info.RunID)
		}
	}
	r = do(http.MethodGet, "/experiments?project_id=pgp", nil)
	expect(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), `"run_count":40`) {
		t.Errorf("experiment sweep: %s, want its 40 runs counted", r.Body)
	}

	expect(t, do(http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
	deadline = time.Now().Add(time.Minute)
	for {
		do(http.MethodGet, "/projects/"+p.ID, nil).JSON(t, &p)
		if p.Status == "terminated" || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	r = do(http.MethodGet, "/projects/"+p.ID+"/export", nil)
	if r.Status != http.StatusConflict || !strings.Contains(r.Message(), "PostgreSQL") {
		t.Errorf("export of a PostgreSQL project: %d %s, want a 409 that says why", r.Status, r.Body)
	}
	projectDB.Close()
	expect(t, do(http.MethodDelete, "/projects/"+p.ID, nil), http.StatusOK)
	if databases() != 0 {
		t.Errorf("database %s outlived its project", p.Database)
	}
}
