package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"

	"github.com/mlpanel/mlpanel/services/deployer/app"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
	"github.com/mlpanel/mlpanel/services/deployer/fakegce"
)

// servingPort is where the fake instances' model servers listen, each on
// its own loopback address.
const servingPort = 15231

// pingServer stands in for the model server an instance's container runs.
func pingServer(_ *computepb.Instance, ip string) (func(), error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(servingPort)))
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			_, _ = io.WriteString(w, "\n")
			return
		}
		http.NotFound(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}

func newTestGCP(t *testing.T, fake *fakegce.Server) *GCP {
	t.Helper()
	g, err := NewGCP(context.Background(), GCPConfig{
		Project: "proj-1", Zone: "europe-west1-b", MachineType: "e2-small",
		Image: "projects/cos-cloud/global/images/family/cos-stable", ServingImage: "ghcr.io/mlflow/mlflow:v3.6.0",
		Network: "global/networks/default", ServingPort: servingPort,
		Firewall: "mlpanel-serving", Tag: "mlpanel-serving",
		Endpoint: fake.URL, StartTimeout: 20 * time.Second, PollEvery: 20 * time.Millisecond,
	}, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func target(id string) app.Target {
	return app.Target{
		Deployment:  domain.Deployment{ID: id, ModelURI: "models:/my model/3", Type: domain.TypeGCP},
		TrackingURI: "https://panel.example.com/projects/demo/mlflow",
	}
}

func TestGCPStartAndStop(t *testing.T) {
	fake := fakegce.New()
	defer fake.Close()
	fake.Serve = pingServer
	fake.OpPolls = 2
	fake.GetsUntilRunning = 2
	g := newTestGCP(t, fake)

	var stages []domain.Stage
	srv, err := g.Start(context.Background(), target("7"), func(s domain.Stage) { stages = append(stages, s) })
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	want := []domain.Stage{domain.StageCreatingInstance, domain.StageWaitingForIP, domain.StageWaitingForServer}
	if strings.Join(stageStrings(stages), ",") != strings.Join(stageStrings(want), ",") {
		t.Errorf("progress %v, want %v", stages, want)
	}
	var d domain.Deployment
	srv.Apply(&d)
	if !strings.HasPrefix(d.InstanceName, "mlpanel-dep-7-") || !strings.HasPrefix(d.Host, "127.0.0.") ||
		d.Port != servingPort || d.URL != "http://"+d.Host+":"+strconv.Itoa(servingPort) {
		t.Fatalf("applied %+v", d)
	}

	// The firewall rule opens the serving port for the tag.
	fw, ok := fake.Firewall("mlpanel-serving")
	if !ok || fw.GetTargetTags()[0] != "mlpanel-serving" || fw.GetAllowed()[0].GetPorts()[0] != strconv.Itoa(servingPort) ||
		fw.GetAllowed()[0].GetIPProtocol() != "tcp" || fw.GetDirection() != "INGRESS" {
		t.Fatalf("firewall %v", fw)
	}

	// The insert body: machine type, image, auto-deleted boot disk,
	// external IP, tag, startup script, and no key anywhere.
	var insert []byte
	opPolls := 0
	for _, r := range fake.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/zones/europe-west1-b/instances") {
			insert = r.Body
		}
		if r.Method == http.MethodGet && strings.Contains(r.Path, "/zones/europe-west1-b/operations/") {
			opPolls++
		}
	}
	if opPolls < 2 {
		t.Errorf("the insert operation was polled %d times, want >= 2", opPolls)
	}
	var body struct {
		Name        string `json:"name"`
		MachineType string `json:"machineType"`
		Disks       []struct {
			Boot             bool `json:"boot"`
			AutoDelete       bool `json:"autoDelete"`
			InitializeParams struct {
				SourceImage string `json:"sourceImage"`
			} `json:"initializeParams"`
		} `json:"disks"`
		NetworkInterfaces []struct {
			AccessConfigs []struct {
				Type string `json:"type"`
			} `json:"accessConfigs"`
		} `json:"networkInterfaces"`
		Tags struct {
			Items []string `json:"items"`
		} `json:"tags"`
		Metadata struct {
			Items []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"items"`
		} `json:"metadata"`
		ServiceAccounts []any `json:"serviceAccounts"`
	}
	if err := json.Unmarshal(insert, &body); err != nil {
		t.Fatalf("insert body %s: %v", insert, err)
	}
	if body.MachineType != "zones/europe-west1-b/machineTypes/e2-small" ||
		len(body.Disks) != 1 || !body.Disks[0].Boot || !body.Disks[0].AutoDelete ||
		body.Disks[0].InitializeParams.SourceImage != "projects/cos-cloud/global/images/family/cos-stable" ||
		len(body.NetworkInterfaces) != 1 || body.NetworkInterfaces[0].AccessConfigs[0].Type != "ONE_TO_ONE_NAT" ||
		len(body.Tags.Items) != 1 || body.Tags.Items[0] != "mlpanel-serving" || len(body.ServiceAccounts) != 0 {
		t.Fatalf("insert body %s", insert)
	}
	script := ""
	for _, it := range body.Metadata.Items {
		if it.Key == "startup-script" {
			script = it.Value
		}
	}
	for _, want := range []string{"#!/bin/bash\n", "'models:/my model/3'", "MLFLOW_TRACKING_URI='https://panel.example.com/projects/demo/mlflow'",
		"-p " + strconv.Itoa(servingPort) + ":" + strconv.Itoa(servingPort), "'ghcr.io/mlflow/mlflow:v3.6.0'"} {
		if !strings.Contains(script, want) {
			t.Errorf("startup script lacks %q:\n%s", want, script)
		}
	}
	if !strings.HasPrefix(script, "#!/bin/bash\n") {
		t.Errorf("startup script does not begin with #!/bin/bash")
	}
	low := strings.ToLower(string(insert))
	for _, bad := range []string{"private_key", "service_account", "credentials", "-----begin"} {
		if strings.Contains(low, bad) {
			t.Errorf("insert body carries %q", bad)
		}
	}

	if !srv.Alive(context.Background()) || !srv.Ready(context.Background()) {
		t.Fatal("started server not alive and ready")
	}
	// A second start reuses the firewall rule.
	srv2, err := g.Start(context.Background(), target("8"), func(domain.Stage) {})
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	fwInserts := 0
	for _, r := range fake.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/global/firewalls") {
			fwInserts++
		}
	}
	if fwInserts != 1 {
		t.Errorf("firewall inserted %d times, want once", fwInserts)
	}

	if err := srv.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatalf("stopping a deleted instance again: %v", err)
	}
	if got := fake.Instances(); len(got) != 1 {
		t.Fatalf("instances after one stop: %v", got)
	}
	// An instance deleted behind the panel's back is not alive.
	var d2 domain.Deployment
	srv2.Apply(&d2)
	fake.Kill(d2.InstanceName)
	if srv2.(*gcpServer).checkedAt = (time.Time{}); srv2.Alive(context.Background()) {
		t.Fatal("a vanished instance is alive")
	}
	if _, ok := g.Adopt(context.Background(), d2); ok {
		t.Fatal("adopted a vanished instance")
	}
}

func TestGCPErrors(t *testing.T) {
	fake := fakegce.New()
	defer fake.Close()
	fake.Serve = pingServer
	g := newTestGCP(t, fake)

	for name, tc := range map[string]struct {
		arm  func()
		want string
	}{
		"permission": {func() {
			fake.FailNextInsert(fakegce.Fault{Status: 403, Reason: "forbidden", Message: "Required 'compute.instances.create' permission for 'projects/proj-1'"})
		}, "compute.instances.create"},
		"quota in the operation": {func() {
			fake.FailNextInsertOperation(fakegce.OpFault{Code: "QUOTA_EXCEEDED", Message: "Quota 'CPUS' exceeded. Limit: 8.0 in region europe-west1."})
		}, "Quota 'CPUS' exceeded"},
		"quota rejected": {func() {
			fake.FailNextInsert(fakegce.Fault{Status: 403, Reason: "quotaExceeded", Message: "Quota 'IN_USE_ADDRESSES' exceeded."})
		}, "IN_USE_ADDRESSES"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.arm()
			_, err := g.Start(context.Background(), target("9"), func(domain.Stage) {})
			var perm *app.Permanent
			if err == nil || !errors.As(err, &perm) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start error %v, want a permanent error with %q", err, tc.want)
			}
			if got := fake.Instances(); len(got) != 0 {
				t.Fatalf("instances left after a failed start: %v", got)
			}
		})
	}
}

func TestGCPTimeoutDeletesInstance(t *testing.T) {
	fake := fakegce.New()
	defer fake.Close()
	// No model server: /ping never answers.
	g := newTestGCP(t, fake)
	g.cfg.StartTimeout = 500 * time.Millisecond
	_, err := g.Start(context.Background(), target("10"), func(domain.Stage) {})
	var perm *app.Permanent
	if err == nil || errors.As(err, &perm) || !strings.Contains(err.Error(), "/ping") {
		t.Fatalf("start error %v, want a retryable timeout waiting for /ping", err)
	}
	if got := fake.Instances(); len(got) != 0 {
		t.Fatalf("instances left after a timed-out start: %v", got)
	}
}

func stageStrings(s []domain.Stage) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = string(x)
	}
	return out
}
