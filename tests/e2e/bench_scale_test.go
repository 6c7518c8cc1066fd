package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// scaleResult is what the 100-project run measured; the benchmark runs
// it once however often Go calls the function.
type scaleResult struct {
	projects, maxAwake, peakAwake      int
	firstStart, wake, awakeGet         []time.Duration
	perProjectPSS, peakTotal, restPSS  int64
	panelPSS, sharedPSS, restServerPSS int64
}

var (
	scaleOnce sync.Once
	scaleRes  *scaleResult
)

// BenchmarkHundredProjects is the scale test of sleeping projects:
// E2E_SCALE_PROJECTS (default 100) projects on one panel with
// MLPANEL_MAX_AWAKE=10, each started and given a logged run in turn;
// then a client reads every project's run in turn through the gateway,
// waking the sleeping ones. Every answer must be right, at most 10
// servers may run at any time, and no process may outlive the panel.
// It prints the peak memory of the panel and every server (PSS) beside
// its bound, 10 x one project's PSS plus the panel, from the same run.
//
//	go test -run '^$' -bench BenchmarkHundredProjects -benchtime 1x -timeout 60m ./tests/e2e/
func BenchmarkHundredProjects(b *testing.B) {
	scaleOnce.Do(func() { scaleRes = runScale(b) })
	r := scaleRes
	if r == nil {
		b.Fatal("the scale run failed; see its first report")
	}
	mib := func(v int64) float64 { return float64(v) / (1 << 20) }
	bound := 10*r.perProjectPSS + r.panelPSS + r.sharedPSS
	b.ReportMetric(float64(r.projects), "projects")
	b.ReportMetric(float64(r.peakAwake), "peak-awake")
	b.ReportMetric(mib(r.perProjectPSS), "project-PSS-MiB")
	b.ReportMetric(mib(r.peakTotal), "peak-total-PSS-MiB")
	b.ReportMetric(mib(bound), "bound-PSS-MiB")
	b.ReportMetric(float64(r.peakTotal)/float64(bound), "peak/bound")
	b.ReportMetric(mib(r.restPSS), "all-asleep-PSS-MiB")
	b.ReportMetric(median(r.firstStart).Seconds(), "first-start-p50-s")
	b.ReportMetric(median(r.wake).Seconds(), "wake-p50-s")
	b.ReportMetric(float64(median(r.wake))/float64(median(r.awakeGet)), "wake/awake-request")
	b.Logf("%d projects, MLPANEL_MAX_AWAKE=%d: peak %d awake; PSS one project %.0f MiB, panel %.0f MiB, warm MLflow %.0f MiB; peak total %.0f MiB vs bound %.0f MiB (10 x project + panel + warm MLflow); all asleep %.0f MiB (servers %.0f MiB); first start p50 %.2f s, wake p50 %.2f s, awake request p50 %.0f ms",
		r.projects, r.maxAwake, r.peakAwake, mib(r.perProjectPSS), mib(r.panelPSS), mib(r.sharedPSS), mib(r.peakTotal), mib(bound),
		mib(r.restPSS), mib(r.restServerPSS), median(r.firstStart).Seconds(), median(r.wake).Seconds(), median(r.awakeGet).Seconds()*1000)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

type scaleStats struct {
	Awake          int   `json:"awake"`
	TotalPSSBytes  int64 `json:"totalPssBytes"`
	SharedPSSBytes int64 `json:"sharedPssBytes"`
	Projects       []struct {
		ID       string `json:"id"`
		PSSBytes int64  `json:"pssBytes"`
	} `json:"projects"`
}

func runScale(b *testing.B) *scaleResult {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("E2E_SCALE_PROJECTS")); err == nil && v > 0 {
		n = v
	}
	res := &scaleResult{projects: n, maxAwake: 10}
	before := zygoteProcesses()

	cfg := panelCfg
	cfg.Home = b.TempDir()
	cfg.Projects.Home = cfg.Home
	cfg.Projects.Ports = proc.Range{Lo: 15300, Hi: 15300 + n - 1}
	cfg.Projects.StopOnExit = true
	cfg.Projects.MaxAwake = res.maxAwake
	cfg.Projects.IdleTimeout = 30 * time.Second
	cfg.Gateway.Addr = "127.0.0.1:0"
	s, err := stack.Start(context.Background(), cfg, boot.Logger("warn"))
	if err != nil {
		b.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	get := func(path string, out any) int {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			_ = json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	send := func(method, path string, body any, out any) int {
		req, _ := http.NewRequest(method, s.URL+path, nil)
		if body != nil {
			raw, _ := json.Marshal(body)
			req, _ = http.NewRequest(method, s.URL+path, bytes.NewReader(raw))
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			_ = json.NewDecoder(resp.Body).Decode(out)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // a body left unread cuts the gateway's answer short
		return resp.StatusCode
	}

	// The sampler: the bound and the peak, once a second.
	var mu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var st scaleStats
			if get("/stats", &st) == http.StatusOK {
				total := st.TotalPSSBytes + selfPSS()
				mu.Lock()
				res.peakAwake = max(res.peakAwake, st.Awake)
				res.peakTotal = max(res.peakTotal, total)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()

	// Each project is started and gets a run with one metric, in turn.
	runs := make([]string, n)
	var pss []int64
	for i := range n {
		name := fmt.Sprintf("scale-%03d", i)
		var p project
		if code := send(http.MethodPost, "/projects", map[string]string{"name": name}, &p); code != http.StatusCreated {
			b.Fatalf("creating %s: %d", name, code)
		}
		t0 := time.Now()
		if code := send(http.MethodPut, "/projects/"+p.ID+"/run", nil, nil); code != http.StatusOK {
			b.Fatalf("running %s: %d", name, code)
		}
		api := "/projects/" + name + "/mlflow/api/2.0/mlflow/"
		var created struct {
			Run struct {
				Info struct {
					RunID string `json:"run_id"`
				} `json:"info"`
			} `json:"run"`
		}
		// Held until the project answers: a start is a wake of a new one.
		if code := send(http.MethodPost, api+"runs/create", map[string]any{"experiment_id": "0"}, &created); code != http.StatusOK {
			b.Fatalf("creating a run in %s: %d", name, code)
		}
		res.firstStart = append(res.firstStart, time.Since(t0))
		runs[i] = created.Run.Info.RunID
		if code := send(http.MethodPost, api+"runs/log-metric", map[string]any{"run_id": runs[i], "key": "index", "value": i,
			"timestamp": time.Now().UnixMilli(), "step": 0}, nil); code != http.StatusOK {
			b.Fatalf("logging to %s: %d", name, code)
		}
		var st struct {
			PSSBytes int64 `json:"pssBytes"`
		}
		if i%10 == 9 && get("/projects/"+p.ID+"/stats", &st) == http.StatusOK && st.PSSBytes > 0 {
			pss = append(pss, st.PSSBytes)
		}
	}

	// A client reads every project's run in turn: the sleeping ones wake.
	for i := range n {
		name := fmt.Sprintf("scale-%03d", i)
		var p project
		get("/projects/"+name, &p)
		t0 := time.Now()
		var got struct {
			Run struct {
				Data struct {
					Metrics []struct {
						Key   string  `json:"key"`
						Value float64 `json:"value"`
					} `json:"metrics"`
				} `json:"data"`
			} `json:"run"`
		}
		if code := get("/projects/"+name+"/mlflow/api/2.0/mlflow/runs/get?run_id="+runs[i], &got); code != http.StatusOK {
			b.Fatalf("reading the run of %s (%s): %d", name, p.Status, code)
		}
		d := time.Since(t0)
		if p.Status == "sleeping" {
			res.wake = append(res.wake, d)
		} else {
			res.awakeGet = append(res.awakeGet, d)
		}
		if m := got.Run.Data.Metrics; len(m) != 1 || m[0].Key != "index" || m[0].Value != float64(i) {
			b.Fatalf("the run of %s answered metrics %+v, want index=%d", name, m, i)
		}
	}
	if len(res.awakeGet) == 0 {
		res.awakeGet = append(res.awakeGet, time.Millisecond)
	}

	// Left alone, every project sleeps.
	var st scaleStats
	deadline := time.Now().Add(2 * time.Minute)
	for get("/stats", &st); st.Awake > 0; get("/stats", &st) {
		if time.Now().After(deadline) {
			b.Fatalf("%d projects still awake 2 minutes after their last use", st.Awake)
		}
		time.Sleep(time.Second)
	}
	close(stop)
	<-sampled
	res.restServerPSS = st.TotalPSSBytes
	res.sharedPSS = st.SharedPSSBytes
	res.panelPSS = selfPSS()
	res.restPSS = res.restServerPSS + res.panelPSS
	var sum int64
	for _, v := range pss {
		sum += v
	}
	if len(pss) > 0 {
		res.perProjectPSS = sum / int64(len(pss))
	}
	if res.peakAwake > res.maxAwake {
		b.Fatalf("%d projects ran at once, MLPANEL_MAX_AWAKE is %d", res.peakAwake, res.maxAwake)
	}

	// As after Ctrl-C: nothing of this panel may be left running.
	s.Close()
	closed = true
	if left := slices.DeleteFunc(zygoteProcesses(), func(pid int) bool { return slices.Contains(before, pid) }); len(left) > 0 {
		b.Fatalf("processes %v of the panel outlived it", left)
	}
	return res
}

// zygoteProcesses are the live MLflow zygotes and the servers forked
// from them (their command line is the zygote's).
func zygoteProcesses() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmd, []byte("_run_in_process")) {
			if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// selfPSS is the PSS of this process: the panel (and the test).
func selfPSS() int64 {
	f, err := os.Open("/proc/self/smaps_rollup")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
