package fakegce

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// Metadata returns an instance's metadata value.
func Metadata(inst *computepb.Instance, key string) string {
	for _, it := range inst.GetMetadata().GetItems() {
		if it.GetKey() == key {
			return it.GetValue()
		}
	}
	return ""
}

// MLflowServe is a Serve hook that does on this machine what the
// instance's startup script does on a VM: `mlflow models serve` for the
// model its metadata names, on the instance's address and serving port.
// It refuses a startup script that would not run on a real instance.
func MLflowServe(mlflow, logDir string) func(inst *computepb.Instance, ip string) (func(), error) {
	return func(inst *computepb.Instance, ip string) (func(), error) {
		script := Metadata(inst, "startup-script")
		if !strings.HasPrefix(script, "#!/bin/bash\n") {
			return nil, fmt.Errorf("startup-script does not start with #!/bin/bash")
		}
		model, tracking, port := Metadata(inst, "mlpanel-model-uri"), Metadata(inst, "mlpanel-tracking-uri"), Metadata(inst, "mlpanel-serving-port")
		if model == "" || tracking == "" || port == "" {
			return nil, fmt.Errorf("instance %s lacks mlpanel metadata", inst.GetName())
		}
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return nil, err
		}
		p, err := proc.Start(proc.Spec{
			Path: mlflow,
			Args: []string{"models", "serve", "-m", model, "--env-manager", "local", "-h", ip, "-p", port, "-w", "1"},
			Env: []string{"MLFLOW_TRACKING_URI=" + tracking, "GIT_PYTHON_REFRESH=quiet",
				"PATH=" + filepath.Dir(mlflow) + string(os.PathListSeparator) + os.Getenv("PATH")},
			Dir:     logDir,
			LogFile: filepath.Join(logDir, inst.GetName()+".log"),
		})
		if err != nil {
			return nil, err
		}
		return func() { _ = p.Stop(10 * time.Second) }, nil
	}
}
