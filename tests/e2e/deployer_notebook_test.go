package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDemoNotebook executes examples/notebooks/demo.ipynb headless
// against the running panel: the whole workflow over the REST API, from
// a new project to predictions and a stop. It needs nbclient and
// ipykernel in .venv (python/requirements-test.txt).
func TestDemoNotebook(t *testing.T) {
	py := filepath.Join(repoRoot, ".venv", "bin", "python")
	if err := exec.Command(py, "-c", "import nbclient, nbformat, ipykernel").Run(); err != nil {
		t.Skip("nbclient/ipykernel missing in .venv: pip install -r python/requirements-test.txt")
	}
	nbDir := filepath.Join(repoRoot, "examples", "notebooks")
	script := `import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
for cell in nb.cells:
    for out in cell.get("outputs", []):
        if out.get("name") == "stdout":
            print(out["text"], end="")
`
	cmd := exec.Command(py, "-c", script, filepath.Join(nbDir, "demo.ipynb"), nbDir)
	cmd.Env = append(os.Environ(),
		"MLPANEL_URL="+panel.URL,
		"MLPANEL_REPO="+repoRoot,
		"DEMO_PROJECT=deploy-notebook",
		"DEMO_MODEL=iris-notebook",
		"GIT_PYTHON_REFRESH=quiet",
		// The kernel is the .venv's Python, found on PATH.
		"PATH="+filepath.Join(repoRoot, ".venv", "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("the notebook failed: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	for _, want := range []string{"is running; MLFLOW_TRACKING_URI=", "run_id=", "running at http://", "original format:", "predict while stopped: 409"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("the notebook's output lacks %q:\n%s", want, out.String())
		}
	}
}
