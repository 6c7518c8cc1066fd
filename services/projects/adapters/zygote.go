package adapters

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

//go:embed zygote.py
var zygoteScript string

// Zygote is one warm Python process per projects service that has
// imported MLflow and forks a tracking server per project (zygote.py
// says how and why). A forked server shares the interpreter's pages
// copy-on-write, so it starts in well under a second and costs a
// fraction of a fresh `mlflow server`. It runs in its own process group;
// its servers run in their own sessions, so neither a crash of the
// zygote nor a restart of the panel takes a server down, and a restarted
// panel adopts them by pid like any other.
type Zygote struct {
	Python  string        // the virtualenv's python
	LogFile string        // the zygote's own output (import errors)
	Ready   time.Duration // how long the imports may take
	Env     []string      // added to the panel's environment (zygoteEnv)

	mu     sync.Mutex
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    chan string // reply lines; closed when the zygote exits
	exited chan struct{}
}

// NewZygote returns a zygote for the python beside the mlflow
// executable; it starts on first use (Warm starts it early).
func NewZygote(mlflow, logFile string, ready time.Duration) *Zygote {
	if p, err := exec.LookPath(mlflow); err == nil {
		mlflow = p
	}
	return &Zygote{Python: filepath.Join(filepath.Dir(mlflow), "python"), LogFile: logFile, Ready: ready, Env: zygoteEnv}
}

// zygoteEnv keeps MLflow's imports from starting threads, so that the
// zygote is one thread when it forks (zygote.py: check_single_threaded):
// numpy's BLAS starts a worker pool at import, pyarrow's jemalloc a
// background purger. A tracking server uses neither for its work, and the
// servers it forks inherit these settings.
var zygoteEnv = []string{
	"OPENBLAS_NUM_THREADS=1",
	"OMP_NUM_THREADS=1",
	"MKL_NUM_THREADS=1",
	"JE_ARROW_MALLOC_CONF=background_thread:false",
}

type zygoteReply struct {
	Ready bool   `json:"ready"`
	Pid   int    `json:"pid"`
	Error string `json:"error"`
}

// Warm starts the zygote now, so the first project does not wait for
// MLflow's imports.
func (z *Zygote) Warm() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.ensure()
}

// ensure starts the zygote unless it runs. The caller holds z.mu.
func (z *Zygote) ensure() error {
	if z.cmd != nil {
		select {
		case <-z.exited:
			z.cmd = nil
		default:
			return nil
		}
	}
	logf, err := os.OpenFile(z.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the zygote's log %s: %w", z.LogFile, err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==> %s started the MLflow zygote (%s)\n", time.Now().UTC().Format(time.RFC3339), z.Python)
	cmd := exec.Command(z.Python, "-c", zygoteScript)
	cmd.Env = append(os.Environ(), z.Env...)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the MLflow zygote %s: %w", z.Python, err)
	}
	out, exited := make(chan string, 16), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(outPipe)
		for sc.Scan() {
			out <- sc.Text()
		}
		close(out)
	}()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	z.cmd, z.in, z.out, z.exited = cmd, in, out, exited
	r, err := z.read(z.Ready)
	if err == nil && !r.Ready {
		err = fmt.Errorf("unexpected first line %+v", r)
	}
	if err != nil {
		z.kill()
		tail, _ := proc.Tail(z.LogFile, 20)
		return fmt.Errorf("the MLflow zygote did not get ready: %w; last lines of %s:\n%s", err, z.LogFile, strings.TrimSpace(tail))
	}
	return nil
}

func (z *Zygote) read(timeout time.Duration) (zygoteReply, error) {
	var r zygoteReply
	select {
	case line, ok := <-z.out:
		if !ok {
			return r, errors.New("it exited")
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return r, fmt.Errorf("reading its answer %q: %w", line, err)
		}
		return r, nil
	case <-time.After(timeout):
		return r, fmt.Errorf("no answer within %s", timeout)
	}
}

// kill ends the zygote. The caller holds z.mu.
func (z *Zygote) kill() {
	if z.cmd == nil {
		return
	}
	_ = z.in.Close()
	_ = syscall.Kill(-z.cmd.Process.Pid, syscall.SIGKILL)
	<-z.exited
	z.cmd = nil
}

// Spawn forks a server that runs `mlflow <args>` in dir with env added,
// its output appended to logFile, and returns it watched by pid.
func (z *Zygote) Spawn(args, env []string, dir, logFile string) (*proc.Process, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if err := z.ensure(); err != nil {
		return nil, err
	}
	envMap := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		envMap[k] = v
	}
	req, err := json.Marshal(map[string]any{"args": args, "env": envMap, "dir": dir, "log": logFile})
	if err != nil {
		return nil, err
	}
	if _, err := z.in.Write(append(req, '\n')); err != nil {
		z.kill()
		return nil, fmt.Errorf("asking the MLflow zygote for a server: %w", err)
	}
	r, err := z.read(30 * time.Second)
	if err != nil {
		z.kill() // out of step with its answers: start afresh next time
		return nil, fmt.Errorf("asking the MLflow zygote for a server: %w", err)
	}
	if r.Error != "" {
		return nil, fmt.Errorf("the MLflow zygote could not fork a server: %s", r.Error)
	}
	return proc.Attach(r.Pid)
}

// Pid is the zygote's pid, 0 when it does not run.
func (z *Zygote) Pid() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.cmd == nil {
		return 0
	}
	select {
	case <-z.exited:
		return 0
	default:
		return z.cmd.Process.Pid
	}
}

// Close ends the zygote: end of its input, then SIGKILL after a grace.
// The servers it forked are not touched.
func (z *Zygote) Close() {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.cmd == nil {
		return
	}
	_ = z.in.Close()
	select {
	case <-z.exited:
		z.cmd = nil
	case <-time.After(5 * time.Second):
		z.kill()
	}
}
