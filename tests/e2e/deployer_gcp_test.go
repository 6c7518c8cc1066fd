package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlpanel/mlpanel/cmd/mlpanel/stack"
	"github.com/mlpanel/mlpanel/services/deployer/fakegce"
)

// depGCE is the fake Compute Engine the panel's deployer talks to. Its
// instances run real local model servers, each on its own loopback
// address and the serving port.
var depGCE *fakegce.Server

const depServingPort = 15230

func init() {
	serviceConfigurers = append(serviceConfigurers, func(cfg *stack.Config, home string) {
		depGCE = fakegce.New()
		depGCE.OpPolls = 1
		depGCE.GetsUntilRunning = 2
		depGCE.Serve = fakegce.MLflowServe(filepath.Join(repoRoot, ".venv", "bin", "mlflow"), filepath.Join(home, "fakegce"))
		g := &cfg.Deployer.GCP
		g.Project, g.Zone, g.MachineType = "e2e-gcp-project", "europe-west1-b", "e2e-standard-2"
		g.Endpoint = depGCE.URL
		g.ServingPort = depServingPort
		g.PollEvery = 200 * time.Millisecond
		g.StartTimeout = 4 * time.Minute
	})
}

// TestDeployGCP deploys the example model on a (fake) Compute Engine
// instance and predicts through the gateway; stop deletes the instance.
func TestDeployGCP(t *testing.T) {
	f := depSetup(t)
	d := createDeployment(t, map[string]any{"project_id": f.project.ID, "model_id": f.model, "version": f.version, "type": "gcp"})
	if d.Type != "gcp" {
		t.Fatalf("created %+v, want type gcp", d)
	}
	d = waitDeployment(t, d.ID, "running", 5*time.Minute)
	if !strings.HasPrefix(d.InstanceName, "mlpanel-dep-"+d.ID+"-") || !strings.HasPrefix(d.Host, "127.0.0.") || d.Port != depServingPort {
		t.Fatalf("running gcp deployment %+v: want its instance, external IP and serving port", d)
	}
	if !slices.Contains(depGCE.Instances(), d.InstanceName) {
		t.Fatalf("instance %s not in the fake's %v", d.InstanceName, depGCE.Instances())
	}
	fw, ok := depGCE.Firewall(panelCfg.Deployer.GCP.Firewall)
	if !ok || !slices.Contains(fw.GetTargetTags(), panelCfg.Deployer.GCP.Tag) {
		t.Fatalf("firewall rule %s: %v", panelCfg.Deployer.GCP.Firewall, fw)
	}

	// The slow start was published stage by stage.
	var stages []string
	for _, ev := range depStreamEvents(t, d.ID, 50) {
		if strings.HasSuffix(ev.Type, ".progress") {
			var dd deployment
			if err := json.Unmarshal(ev.Data, &dd); err != nil {
				t.Fatal(err)
			}
			stages = append(stages, dd.Stage)
		}
	}
	if strings.Join(stages, ",") != "creating-instance,waiting-for-ip,waiting-for-server" {
		t.Errorf("progress events %v, want creating-instance, waiting-for-ip, waiting-for-server", stages)
	}

	want := pythonPredictions(t, f.project, f.model, f.version)
	if got := depPredictions(t, d.ID, map[string]any{"data": irisRows}); !reflect.DeepEqual(got, want) {
		t.Errorf("predictions %v, want %v", got, want)
	}
	logs := call(t, http.MethodGet, "/deployments/"+d.ID+"/logs", nil)
	expect(t, logs, http.StatusOK)
	if !strings.Contains(string(logs.Body), "creating instance "+d.InstanceName) {
		t.Errorf("logs do not tell the instance's creation: %s", logs.Body)
	}

	expect(t, call(t, http.MethodPut, "/deployments/"+d.ID+"/stop", nil), http.StatusOK)
	waitDeployment(t, d.ID, "stopped", 2*time.Minute)
	if slices.Contains(depGCE.Instances(), d.InstanceName) {
		t.Fatalf("instance %s survived the stop", d.InstanceName)
	}
	expect(t, call(t, http.MethodPost, "/deployments/"+d.ID+"/predict", map[string]any{"data": irisRows}), http.StatusConflict)
}

// TestDeployGCPErrors: Compute Engine's refusals land on the deployment
// with the API's message, and nothing is left running.
func TestDeployGCPErrors(t *testing.T) {
	f := depSetup(t)
	for name, tc := range map[string]struct {
		arm  func()
		want string
	}{
		"permission": {func() {
			depGCE.FailNextInsert(fakegce.Fault{Status: 403, Reason: "forbidden", Message: "Required 'compute.instances.create' permission for 'projects/e2e-gcp-project'"})
		}, "compute.instances.create"},
		"quota": {func() {
			depGCE.FailNextInsertOperation(fakegce.OpFault{Code: "QUOTA_EXCEEDED", Message: "Quota 'CPUS' exceeded. Limit: 8.0 in region europe-west1."})
		}, "Quota 'CPUS' exceeded"},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(depGCE.Instances())
			tc.arm()
			d := createDeployment(t, map[string]any{"project_id": f.project.ID, "model_id": f.model, "type": "gcp"})
			d = waitDeployment(t, d.ID, "failed", time.Minute)
			if !strings.Contains(d.Error, tc.want) {
				t.Fatalf("error %q, want the API's message %q", d.Error, tc.want)
			}
			if n := len(depGCE.Instances()); n != before {
				t.Fatalf("%d instances after a failed start, want %d", n, before)
			}
		})
	}
}
