package kube_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mlpanel/mlpanel/pkg/platform/kube"
	"github.com/mlpanel/mlpanel/pkg/platform/kubetest"
)

func workload(project, name string) kube.Workload {
	return kube.Workload{
		Name: name, Project: project, Kind: kube.KindTracking,
		Image:   "mlpanel/projects:test",
		Command: []string{"mlflow", "server", "--port", "5000"},
		Env:     map[string]string{"GIT_PYTHON_REFRESH": "quiet"},
		Secret:  map[string]string{"MLFLOW_BACKEND_STORE_URI": "postgresql://u:secret@db/p"},
		Port:    5000, Probe: "/health",
		Volume: &kube.Volume{MountPath: "/data", Size: "1Gi"},
	}
}

func within(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestWorkloadLifecycle drives one workload through what a project's
// server goes through, against a real API server whose pods kwok marks
// Running: created, ready, updated, asleep, awake, found again, removed,
// and garbage-collected with its project.
func TestWorkloadLifecycle(t *testing.T) {
	kc := kubetest.Start(t)
	c, err := kube.NewCluster(kc.Admin, kc.Namespace, "mlpanel/projects:latest")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cs := kc.Client
	ns := kc.Namespace
	w := workload("7", "mlpanel-tracking-7")

	if err := c.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx, w.Name); err != nil {
		t.Fatalf("the pod kwok runs did not make the Deployment ready: %v", err)
	}
	anchor, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, kube.AnchorName("7"), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the project's anchor: %v", err)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, w.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services(ns).Get(ctx, w.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, w.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := cs.CoreV1().Secrets(ns).Get(ctx, w.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []metav1.Object{dep, svc, pvc, sec} {
		if l := o.GetLabels(); l[kube.LabelProject] != "7" || l[kube.LabelManagedBy] != "mlpanel" || l[kube.LabelKind] != kube.KindTracking {
			t.Errorf("%s has labels %v, want the project, managed-by and kind", o.GetName(), l)
		}
		if refs := o.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != anchor.UID {
			t.Errorf("%s is owned by %v, want the project's anchor %s", o.GetName(), refs, anchor.UID)
		}
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	if ctr.Image != "mlpanel/projects:test" || !slices.Equal(ctr.Command, w.Command) || ctr.ReadinessProbe.HTTPGet.Path != "/health" {
		t.Errorf("the container runs %s %v with probe %v", ctr.Image, ctr.Command, ctr.ReadinessProbe.HTTPGet)
	}
	for _, e := range ctr.Env {
		if e.Name == "MLFLOW_BACKEND_STORE_URI" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Error("a password is in the Deployment's spec, not in its Secret")
		}
	}
	if got := c.Address(w.Name, 5000); got != "http://mlpanel-tracking-7."+ns+".svc:5000" {
		t.Errorf("Address = %s", got)
	}
	st, err := c.Observe(ctx, w.Name)
	if err != nil || st.State != kube.Running || len(st.Pods) != 1 {
		t.Fatalf("Observe = %+v, %v; want running with its one pod", st, err)
	}

	// An update (new settings) rolls the pod; still one Deployment.
	w.Env["MLFLOW_EXTRA"] = "1"
	if err := c.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx, w.Name); err != nil {
		t.Fatal(err)
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(ctx, w.Name, metav1.GetOptions{})
	if !slices.ContainsFunc(dep.Spec.Template.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == "MLFLOW_EXTRA" }) {
		t.Error("the update did not reach the Deployment")
	}

	// Sleep: scaled to 0, the objects and the volume stay.
	if err := c.Scale(ctx, w.Name, 0); err != nil {
		t.Fatal(err)
	}
	within(t, time.Minute, "asleep with no pod left", func() bool {
		st, err := c.Observe(ctx, w.Name)
		return err == nil && st.State == kube.Asleep
	})
	for _, get := range []func() error{
		func() error { _, err := cs.CoreV1().Services(ns).Get(ctx, w.Name, metav1.GetOptions{}); return err },
		func() error {
			_, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, w.Name, metav1.GetOptions{})
			return err
		},
	} {
		if err := get(); err != nil {
			t.Errorf("asleep, an object is gone: %v", err)
		}
	}
	found, err := c.Find(ctx, map[string]string{kube.LabelProject: "7"})
	if err != nil || len(found) != 1 || found[0].Replicas != 0 {
		t.Fatalf("Find while asleep = %+v, %v", found, err)
	}
	// Wake: Apply brings the replica back.
	if err := c.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx, w.Name); err != nil {
		t.Fatal(err)
	}
	found, err = c.Find(ctx, map[string]string{kube.LabelProject: "7", kube.LabelKind: kube.KindTracking})
	if err != nil || len(found) != 1 || found[0].Name != w.Name || found[0].Replicas != 1 {
		t.Fatalf("Find after wake = %+v, %v; want the one Deployment", found, err)
	}

	// Remove: the server's objects go, the data stays.
	if err := c.Delete(ctx, w.Name); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Observe(ctx, w.Name); err != nil || st.State != kube.Gone {
		t.Errorf("Observe after Delete = %+v, %v", st, err)
	}
	if _, err := cs.CoreV1().Services(ns).Get(ctx, w.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Service outlived Delete: %v", err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, w.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("Delete took the project's volume: %v", err)
	}
	if err := c.Delete(ctx, w.Name); err != nil {
		t.Errorf("deleting what is gone: %v", err)
	}

	// Deleting the project collects everything it owns.
	other := workload("7", "mlpanel-model-3-v1")
	other.Kind, other.Volume, other.Secret = kube.KindModel, nil, nil
	if err := c.Apply(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteProject(ctx, "7"); err != nil {
		t.Fatal(err)
	}
	within(t, 2*time.Minute, "the garbage collector removes the project's volume and model server", func() bool {
		_, e1 := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, w.Name, metav1.GetOptions{})
		_, e2 := cs.AppsV1().Deployments(ns).Get(ctx, other.Name, metav1.GetOptions{})
		_, e3 := cs.CoreV1().Services(ns).Get(ctx, other.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(e1) && apierrors.IsNotFound(e2) && apierrors.IsNotFound(e3)
	})
}

// exercise makes every call the runtime makes, for a new project; the
// first error ends it.
func exercise(ctx context.Context, c *kube.Cluster, project string) error {
	w := workload(project, "mlpanel-tracking-"+project)
	steps := []func() error{
		func() error { return c.Apply(ctx, w) },
		// Observe, not WaitReady: the permissions are the same, and kwok
		// takes its time to mark pods ready.
		func() error { _, err := c.Observe(ctx, w.Name); return err },
		func() error {
			// Logs read the newest pod's: wait for the pod to exist.
			for {
				st, err := c.Observe(ctx, w.Name)
				if err != nil || len(st.Pods) > 0 {
					break
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
			_, err := c.Logs(ctx, w.Name, 10)
			if err != nil && !apierrors.IsForbidden(err) {
				return nil // kwok's fake nodes keep no logs; the permission was granted
			}
			return err
		},
		func() error { _, err := c.Find(ctx, map[string]string{kube.LabelProject: project}); return err },
		func() error { return c.Scale(ctx, w.Name, 0) },
		func() error { return c.Apply(ctx, w) },
		func() error { return c.Delete(ctx, w.Name) },
		func() error { return c.DeleteProject(ctx, project) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// TestRulesAreTheMinimum: a service account with exactly kube.Rules (the
// chart's Role) runs the whole lifecycle; without any one verb of them
// the runtime fails, with an error naming that verb and resource.
func TestRulesAreTheMinimum(t *testing.T) {
	kc := kubetest.Start(t)
	rc := kc.ServiceAccount(t, "mlpanel", kube.PolicyRules())
	c, err := kube.NewCluster(rc, kc.Namespace, "mlpanel/projects:latest")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := exercise(ctx, c, "full"); err != nil {
		t.Fatalf("with the chart's rules: %v", err)
	}
	n := 0
	for i, r := range kube.Rules {
		for _, verb := range r.Verbs {
			n++
			less := kube.PolicyRules()
			less[i].Verbs = slices.DeleteFunc(slices.Clone(less[i].Verbs), func(v string) bool { return v == verb })
			if len(less[i].Verbs) == 0 {
				less = slices.Delete(less, i, i+1)
			}
			kc.SetRole(t, "mlpanel", less)
			waitDenied(t, ctx, rc, kc.Namespace, r, verb)
			project := fmt.Sprintf("p%d", n)
			err := exercise(ctx, c, project)
			want := fmt.Sprintf("needs the verb %q on %q", verb, r.Resource)
			switch {
			case err == nil:
				t.Errorf("without %s on %s the runtime still works: the rule is not needed", verb, r.Resource)
			case !strings.Contains(err.Error(), want) || !apierrors.IsForbidden(err):
				t.Errorf("without %s on %s: %v; want an error that %s", verb, r.Resource, err, want)
			}
			// Leave nothing for the next round to trip over.
			admin, _ := kube.NewCluster(kc.Admin, kc.Namespace, "")
			_ = admin.Delete(ctx, "mlpanel-tracking-"+project)
			_ = admin.DeleteProject(ctx, project)
		}
	}
}

// waitDenied waits until RBAC applies the changed Role: the service
// account may no longer do verb on the rule's resource.
func waitDenied(t *testing.T, ctx context.Context, rc *rest.Config, ns string, r kube.Rule, verb string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	res, sub, _ := strings.Cut(r.Resource, "/")
	within(t, 30*time.Second, "RBAC applies the new Role", func() bool {
		rev, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
			Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: r.Group, Resource: res, Subresource: sub}},
		}, metav1.CreateOptions{})
		return err == nil && !rev.Status.Allowed
	})
}
