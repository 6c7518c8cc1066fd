package adapters_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlpanel/mlpanel/pkg/platform/kube"
	"github.com/mlpanel/mlpanel/pkg/platform/kubetest"
	"github.com/mlpanel/mlpanel/services/deployer/adapters"
	"github.com/mlpanel/mlpanel/services/deployer/app"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// TestKubeModelServers runs a deployment's model servers on a real API
// server (pods made Running by kwok) through the deployer's Backend: the
// server of a version is a Deployment + Service labelled with its project
// and deployment and owned by the project's anchor; a rollover's new
// version runs beside the old; a restarted deployer adopts both; a
// stopped one is gone; deleting the project's anchor collects the rest.
func TestKubeModelServers(t *testing.T) {
	kc := kubetest.Start(t)
	sa := kc.ServiceAccount(t, "mlpanel-runtime", kube.PolicyRules())
	cfg := kube.Config{Kubeconfig: kc.WriteKubeconfig(t, sa, kc.Namespace), Image: "mlpanel/projects:test"}
	home := t.TempDir()
	b, err := adapters.NewKube(cfg, home, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cs, ns := kc.Client, kc.Namespace
	d := domain.Deployment{ID: "5", ProjectID: "12", ModelID: "churn", Version: "1", ModelURI: "models:/churn/1", Type: domain.TypeLocal}
	tracking := "http://mlpanel-tracking-12." + ns + ".svc:5000/projects/12/mlflow"
	if got := b.TrackingURI(app.Project{ID: "12", InternalURL: tracking}); got != tracking {
		t.Errorf("TrackingURI = %s, want the project's Service", got)
	}

	v1, err := b.Start(ctx, app.Target{Deployment: d, TrackingURI: tracking}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, "version 1 ready", func() bool { return v1.Ready(ctx) })
	if !v1.Alive(ctx) || v1.Local() {
		t.Errorf("alive %v, local %v: want alive and not local (it outlives the deployer)", v1.Alive(ctx), v1.Local())
	}
	v1.Apply(&d)
	if d.InstanceName != "mlpanel-model-5-v1" || d.URL != "http://mlpanel-model-5-v1."+ns+".svc:8080" || d.Pid != 0 {
		t.Errorf("recorded %s %s pid %d", d.InstanceName, d.URL, d.Pid)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, d.InstanceName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := dep.Labels
	if l[kube.LabelProject] != "12" || l[kube.LabelDeployment] != "5" || l[kube.LabelVersion] != "1" || l[kube.LabelKind] != kube.KindModel {
		t.Errorf("labels %v", l)
	}
	if refs := dep.OwnerReferences; len(refs) != 1 || refs[0].Name != kube.AnchorName("12") {
		t.Errorf("owners %v, want the project's anchor", refs)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if args := strings.Join(c.Command, " "); !strings.Contains(args, "mlflow models serve -m models:/churn/1") || c.ReadinessProbe.HTTPGet.Path != "/ping" {
		t.Errorf("runs %q, probe %s", args, c.ReadinessProbe.HTTPGet.Path)
	}
	if c.Env[0].Name != "GIT_PYTHON_REFRESH" || c.Env[1].Value != tracking {
		t.Errorf("env %v: want MLFLOW_TRACKING_URI the project's Service", c.Env)
	}

	// A rollover runs version 2 beside version 1.
	d2 := d
	d2.Version, d2.ModelURI, d2.InstanceName = "2", "models:/churn/2", ""
	v2, err := b.Start(ctx, app.Target{Deployment: d2, TrackingURI: tracking}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, "version 2 ready", func() bool { return v2.Ready(ctx) })
	if !v1.Ready(ctx) {
		t.Error("version 1 stopped serving when version 2 started")
	}

	// A restarted deployer adopts both, by the names it recorded.
	fresh, err := adapters.NewKube(cfg, home, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, dd := range []domain.Deployment{d, d2} {
		s, ok := fresh.Adopt(ctx, dd)
		if !ok || !s.Ready(ctx) {
			t.Errorf("version %s not adopted", dd.Version)
		}
	}
	list, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "mlpanel.io/deployment=5"})
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("%d Deployments for the deployment after adoption, want 2 (%v)", len(list.Items), err)
	}

	// Stopping version 1 leaves nothing of it.
	if err := v1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services(ns).Get(ctx, d.InstanceName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Service outlived Stop: %v", err)
	}
	if _, ok := fresh.Adopt(ctx, d); ok {
		t.Error("a stopped server was adopted")
	}
	if v1.Alive(ctx) {
		t.Error("a stopped server is alive")
	}
	if err := v1.Stop(ctx); err != nil {
		t.Errorf("stopping twice: %v", err)
	}
	if log, _ := os.ReadFile(b.LogFile(d)); !strings.Contains(string(log), "deleted mlpanel-model-5-v1") {
		t.Errorf("the deployment's log says %q", log)
	}

	// The project goes on the cluster: its model servers go with it.
	admin, err := kube.NewCluster(kc.Admin, ns, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteProject(ctx, "12"); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, "version 2 collected with its project", func() bool { return !v2.Alive(ctx) })
}

// TestKubeModelServerRBAC: without the right to create Deployments the
// start fails for good, naming the verb, and leaves nothing behind.
func TestKubeModelServerRBAC(t *testing.T) {
	kc := kubetest.Start(t)
	rules := kube.PolicyRules()
	for i, r := range rules {
		if r.Resources[0] == "deployments" {
			rules[i].Verbs = []string{"get", "list", "patch", "delete"}
		}
	}
	sa := kc.ServiceAccount(t, "mlpanel-runtime", rules)
	b, err := adapters.NewKube(kube.Config{Kubeconfig: kc.WriteKubeconfig(t, sa, kc.Namespace), Image: "mlpanel/projects:test"}, t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := domain.Deployment{ID: "9", ProjectID: "1", ModelID: "m", Version: "1", ModelURI: "models:/m/1"}
	_, err = b.Start(ctx, app.Target{Deployment: d, TrackingURI: "http://x"}, nil)
	var perm *app.Permanent
	if err == nil || !strings.Contains(err.Error(), `needs the verb "create" on "deployments"`) || !errors.As(err, &perm) {
		t.Fatalf("Start = %v; want a permanent error naming create on deployments", err)
	}
	if _, err := kc.Client.CoreV1().Services(kc.Namespace).Get(ctx, adapters.ModelName(d), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a failed start left its Service: %v", err)
	}
}
