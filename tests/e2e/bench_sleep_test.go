package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// BenchmarkColdStartAndWake prints, side by side in one run: the cold
// start of a bare `mlflow server` (the baseline) vs a panel start (PUT
// run until the project is running) vs a wake (the first proxied request
// to a sleeping project, until its answer); the first proxied request to
// an awake project; and the PSS of an idle bare server vs an idle panel
// project. Each round starts real servers, so rounds are capped at 2.
//
//	make bench
func BenchmarkColdStartAndWake(b *testing.B) {
	name := fmt.Sprintf("benchwake%d", time.Now().UnixNano()%1e6)
	r := call(b, http.MethodPost, "/projects", map[string]string{"name": name, "idleTimeout": "3s"})
	expect(b, r, http.StatusCreated)
	var p project
	r.JSON(b, &p)
	defer call(b, http.MethodPut, "/projects/"+p.ID+"/terminate", nil)
	api := panel.URL + "/projects/" + name + "/mlflow/api/2.0/mlflow/experiments/search?max_results=10"

	// Python's imports come from a warm page cache for every contender:
	// otherwise whichever starts first pays for reading MLflow from disk.
	python(b, "import mlflow.server, mlflow.store.tracking.sqlalchemy_store")
	rounds := min(b.N, 2)
	var bare, start, wake, awake time.Duration
	var barePSS, panelPSS int64
	b.ResetTimer()
	for range rounds {
		d, pss := bareMlflowStart(b)
		bare += d
		barePSS += pss

		t0 := time.Now()
		expect(b, call(b, http.MethodPut, "/projects/"+p.ID+"/run", nil), http.StatusOK)
		waitRunningFast(b, p.ID)
		start += time.Since(t0)

		t0 = time.Now()
		mustGet(b, api)
		awake += time.Since(t0)
		time.Sleep(time.Second) // settle, then measure the idle server
		var st struct {
			PSSBytes int64 `json:"pssBytes"`
		}
		sr := call(b, http.MethodGet, "/projects/"+p.ID+"/stats", nil)
		expect(b, sr, http.StatusOK)
		sr.JSON(b, &st)
		panelPSS += st.PSSBytes

		waitProject(b, p.ID, "sleeping", time.Minute)
		t0 = time.Now()
		mustGet(b, api) // held while the project wakes
		wake += time.Since(t0)
		expect(b, call(b, http.MethodPut, "/projects/"+p.ID+"/terminate", nil), http.StatusOK)
	}
	n := float64(rounds)
	sec := func(d time.Duration) float64 { return d.Seconds() / n }
	b.ReportMetric(sec(bare), "bare-start-s")
	b.ReportMetric(sec(start), "panel-start-s")
	b.ReportMetric(sec(wake), "wake-first-request-s")
	b.ReportMetric(sec(awake)*1000, "awake-first-request-ms")
	b.ReportMetric(float64(start)/float64(bare), "panel-start/bare")
	b.ReportMetric(float64(wake)/float64(bare), "wake/bare")
	b.ReportMetric(float64(wake)/float64(awake), "sleeping/awake-request")
	b.ReportMetric(float64(barePSS)/n/(1<<20), "bare-PSS-MiB")
	b.ReportMetric(float64(panelPSS)/n/(1<<20), "panel-PSS-MiB")
	b.Logf("cold start: bare mlflow server %.1f s, panel start %.1f s, wake to first answer %.1f s; first request awake %.0f ms; PSS idle: bare %d MiB, panel project %d MiB",
		sec(bare), sec(start), sec(wake), sec(awake)*1000, barePSS/int64(rounds)>>20, panelPSS/int64(rounds)>>20)
}

// bareMlflowStart starts `mlflow server` with the flags and environment
// the panel uses (so the ratio is the panel's own cost), times it until
// /health answers, measures its idle PSS and stops it.
func bareMlflowStart(b *testing.B) (time.Duration, int64) {
	b.Helper()
	dir := b.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	t0 := time.Now()
	pr, err := proc.Start(proc.Spec{Path: filepath.Join(repoRoot, ".venv", "bin", "mlflow"), Dir: dir,
		Args: []string{"server", "--backend-store-uri", "sqlite:///" + filepath.Join(dir, "mlflow.db"),
			"--serve-artifacts", "--artifacts-destination", filepath.Join(dir, "artifacts"),
			"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--workers", "1"},
		Env:     []string{"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false"},
		LogFile: filepath.Join(dir, "mlflow.log")})
	if err != nil {
		b.Fatal(err)
	}
	defer pr.Stop(10 * time.Second)
	health := "http://127.0.0.1:" + strconv.Itoa(port) + "/health"
	for {
		if resp, err := http.Get(health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(t0) > 3*time.Minute {
			b.Fatal("a bare mlflow server did not answer /health in 3 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	d := time.Since(t0)
	time.Sleep(time.Second)
	u, err := proc.GroupUsage(pr.Pid)
	if err != nil {
		b.Fatal(err)
	}
	return d, u.PSSBytes
}

// waitRunningFast polls more often than waitProject, for timing.
func waitRunningFast(b *testing.B, id string) {
	b.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if getProject(b, id).Status == "running" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("project %s not running after 3 minutes", id)
}

func mustGet(b *testing.B, url string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: %d %s", url, resp.StatusCode, body)
	}
}
