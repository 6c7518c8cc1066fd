package adapters_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlpanel/mlpanel/pkg/platform/kube"
	"github.com/mlpanel/mlpanel/pkg/platform/kubetest"
	"github.com/mlpanel/mlpanel/services/projects/adapters"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// kubeRuntime is the projects' Kubernetes runtime as the service builds
// it: from a kubeconfig file (MLPANEL_KUBECONFIG) holding the token of a
// service account with the chart's Role, nothing more.
func kubeRuntime(t *testing.T, kc *kubetest.Cluster, kubeconfig string) *adapters.Kube {
	t.Helper()
	k, err := adapters.NewKube(adapters.KubeConfig{
		Config:     kube.Config{Kubeconfig: kubeconfig, Image: "mlpanel/projects:test"},
		VolumeSize: "2Gi", ArtifactsDestination: "s3://bucket/mlpanel",
	}, 2, false, "postgresql://mlpanel:pw@db:5432/postgres", "mysql://mlpanel:pw@mysql:3306/")
	if err != nil {
		t.Fatal(err)
	}
	if k.Cluster.Namespace != kc.Namespace {
		t.Fatalf("namespace %q, want the kubeconfig context's %q", k.Cluster.Namespace, kc.Namespace)
	}
	return k
}

// TestKubeRuntimeLifecycle runs a project's tracking server through the
// runtime seam on a real API server (pods made Running by kwok): started,
// reported running at its Service's address, started again without a
// duplicate, put to sleep (scaled to 0) and woken, adopted by a fresh
// runtime after a "restart of the panel", lost behind the panel's back,
// removed, and purged with the project. `kubectl get all -l
// mlpanel.io/project=<id>` shows what belongs to the project.
func TestKubeRuntimeLifecycle(t *testing.T) {
	kc := kubetest.Start(t)
	sa := kc.ServiceAccount(t, "mlpanel-runtime", kube.PolicyRules())
	kubeconfig := kc.WriteKubeconfig(t, sa, kc.Namespace)
	k := kubeRuntime(t, kc, kubeconfig)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cs, ns := kc.Client, kc.Namespace
	p := domain.Project{ID: "12", Name: "churn", Backend: domain.BackendSQLite}
	name := adapters.TrackingName(p)
	want := "http://" + name + "." + ns + ".svc:5000/projects/12/mlflow"

	srv, err := k.Start(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if ref := srv.Ref(); ref.Name != ns+"/"+name || ref.Pid != 0 {
		t.Errorf("Ref = %+v, want the Deployment %s/%s", ref, ns, name)
	}
	var o app.Observation
	kubetest.Eventually(t, "the server is reported running at its Service", func() bool {
		o = srv.Observe(ctx)
		return o.Alive && o.Address != ""
	})
	if o.Address != want || o.Restarts != 0 {
		t.Errorf("Observe = %+v, want address %s and no restarts", o, want)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(dep.Spec.Template.Spec.Containers[0].Command, " ")
	for _, a := range []string{"mlflow server", "--static-prefix /projects/12/mlflow", "--backend-store-uri sqlite:////var/lib/mlpanel/project/mlflow.db", "--workers 2", name + "." + ns + ".svc"} {
		if !strings.Contains(args, a) {
			t.Errorf("the server runs %q, missing %q", args, a)
		}
	}
	if probe := dep.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path; probe != "/projects/12/mlflow/health" {
		t.Errorf("readiness probe %s, want the server's /health under its prefix", probe)
	}
	if dep.Labels["mlpanel.io/project-name"] != "churn" {
		t.Errorf("labels %v: want the project's name too", dep.Labels)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Errorf("a SQLite project has no volume: %v", err)
	}
	// What a user runs to see the project's objects.
	out, err := exec.Command("kubectl", "--kubeconfig", kc.WriteKubeconfig(t, kc.Admin, ns), "get", "all", "-l", "mlpanel.io/project=12", "-o", "name").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl: %v\n%s", err, out)
	}
	for _, kind := range []string{"deployment.apps/" + name, "service/" + name, "replicaset.apps/", "pod/" + name} {
		if !strings.Contains(string(out), kind) {
			t.Errorf("kubectl get all -l mlpanel.io/project=12 does not list %s:\n%s", kind, out)
		}
	}

	// Started again (a panel that died mid-start): the same Deployment.
	if _, err := k.Start(ctx, p); err != nil {
		t.Fatal(err)
	}
	countDeployments := func() int {
		l, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "mlpanel.io/project=12"})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}
	if n := countDeployments(); n != 1 {
		t.Fatalf("%d Deployments for the project after a second Start, want 1", n)
	}

	// Sleep: scale to 0; nothing to adopt while asleep; wake with Start.
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if *dep.Spec.Replicas != 0 {
		t.Fatalf("asleep with %d replicas", *dep.Spec.Replicas)
	}
	kubetest.Eventually(t, "the pod goes", func() bool {
		l, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "mlpanel.io/project=12"})
		return l != nil && len(l.Items) == 0
	})
	if s, err := kubeRuntime(t, kc, kubeconfig).Adopt(ctx, p); err != nil || s != nil {
		t.Errorf("Adopt of a sleeping project = %v, %v; want none", s, err)
	}
	srv, err = k.Start(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, "the woken server runs", func() bool { o := srv.Observe(ctx); return o.Alive && o.Address == want })

	// A restarted panel adopts the running server, starting nothing.
	fresh := kubeRuntime(t, kc, kubeconfig)
	adopted, err := fresh.Adopt(ctx, p)
	if err != nil || adopted == nil {
		t.Fatalf("Adopt = %v, %v; want the running server", adopted, err)
	}
	if adopted.Ref() != srv.Ref() {
		t.Errorf("adopted %+v, started %+v", adopted.Ref(), srv.Ref())
	}
	kubetest.Eventually(t, "the adopted server is observed running", func() bool { o := adopted.Observe(ctx); return o.Alive && o.Address == want })
	if n := countDeployments(); n != 1 {
		t.Fatalf("%d Deployments after adoption, want 1", n)
	}

	// The cluster replaces the pod (a lost node, an eviction): a restart
	// the engine made itself, the server still alive.
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "mlpanel.io/project=12"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods %v, %v; want one", pods, err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, pods.Items[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, "the replaced pod counts as one restart", func() bool { o = adopted.Observe(ctx); return o.Restarts == 1 })
	if !o.Alive {
		t.Errorf("a server whose pod was replaced is reported gone: %+v", o)
	}

	// Deleted behind the panel's back: gone, with the reason.
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, "the lost server is reported gone", func() bool { o = adopted.Observe(ctx); return !o.Alive })
	if !strings.Contains(o.Reason, "deleted outside the panel") {
		t.Errorf("reason %q", o.Reason)
	}
	if err := adopted.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Service outlived Remove: %v", err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Errorf("Remove took the project's data: %v", err)
	}
	if err := k.Purge(ctx, p); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, "the project's volume is collected with it", func() bool {
		_, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if err := k.Purge(ctx, p); err != nil {
		t.Errorf("purging twice: %v", err)
	}
}

// TestKubeRuntimePostgreSQLProject: a project on the SQL backend keeps its
// database address in a Secret (never in the Deployment's spec) and, with
// an artifacts destination, needs no volume.
func TestKubeRuntimePostgreSQLProject(t *testing.T) {
	kc := kubetest.Start(t)
	k := kubeRuntime(t, kc, kc.WriteKubeconfig(t, kc.ServiceAccount(t, "mlpanel-runtime", kube.PolicyRules()), kc.Namespace))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := domain.Project{ID: "3", Name: "pg", Backend: domain.BackendPostgreSQL, Database: "mlpanel_project_3"}
	srv, err := k.Start(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, "running", func() bool { return srv.Observe(ctx).Address != "" })
	name := adapters.TrackingName(p)
	dep, err := kc.Client.AppsV1().Deployments(kc.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := dep.Spec.Template.Spec
	if strings.Contains(dep.String(), "pw@") {
		t.Error("the database password is in the Deployment's spec")
	}
	if len(spec.Volumes) != 0 {
		t.Errorf("volumes %v: a SQL project with an artifacts destination needs none", spec.Volumes)
	}
	if args := strings.Join(spec.Containers[0].Command, " "); !strings.Contains(args, "--artifacts-destination s3://bucket/mlpanel/3") || strings.Contains(args, "sqlite") {
		t.Errorf("the server runs %q", args)
	}
	sec, err := kc.Client.CoreV1().Secrets(kc.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if uri := string(sec.Data["MLFLOW_BACKEND_STORE_URI"]); !strings.Contains(uri, "/mlpanel_project_3") {
		t.Errorf("the Secret holds %q, want the project's database", uri)
	}
	if _, err := kc.Client.CoreV1().PersistentVolumeClaims(kc.Namespace).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a volume was claimed: %v", err)
	}
	// A MySQL project's server gets its database the same way.
	my := domain.Project{ID: "4", Name: "my", Backend: domain.BackendMySQL, Database: "mlpanel_project_4"}
	w, err := k.Workload(my)
	if err != nil {
		t.Fatal(err)
	}
	if uri := w.Secret["MLFLOW_BACKEND_STORE_URI"]; !strings.HasPrefix(uri, "mysql+pymysql://") || !strings.Contains(uri, "/mlpanel_project_4") {
		t.Errorf("a MySQL project's Secret holds %q, want its database through PyMySQL", uri)
	}
	// Without a database server the start fails at once, saying what to set.
	k.ProjectDBURL = ""
	if _, err := k.Start(ctx, p); err == nil || !strings.Contains(err.Error(), "MLPANEL_PROJECT_DB_URL") {
		t.Errorf("Start without MLPANEL_PROJECT_DB_URL: %v", err)
	}
}
