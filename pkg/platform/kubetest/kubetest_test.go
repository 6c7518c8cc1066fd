package kubetest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// fatalTB records the first Fatal and ends the goroutine, as testing does.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = strings.TrimSpace(fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fatalTB) Fatal(args ...any) { f.Fatalf("%v", args...) }
func (f *fatalTB) Helper()           {}

// TestMissingBinariesFailSayingHowToBuild: without the control plane's
// binaries the harness fails (no skip) and names the script that builds
// them.
func TestMissingBinariesFailSayingHowToBuild(t *testing.T) {
	t.Setenv("MLPANEL_K8S_BIN", t.TempDir())
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); Start(f) }()
	<-done
	if !strings.Contains(f.msg, "kube-apiserver is missing") || !strings.Contains(f.msg, "scripts/engines-kubernetes.sh") {
		t.Errorf("Start without binaries: %q; want it to name the missing binary and the script", f.msg)
	}
}

// TestClusterRunsPodsOnFakeNodes: a Deployment gets a pod that the
// scheduler places on a kwok node and kwok reports Running and Ready;
// a service account without rules is refused.
func TestClusterRunsPodsOnFakeNodes(t *testing.T) {
	c := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	one := int32(1)
	labels := map[string]string{"app": "probe"}
	_, err := c.Client.AppsV1().Deployments(c.Namespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "probe"},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nothing:runs"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		d, err := c.Client.AppsV1().Deployments(c.Namespace).Get(ctx, "probe", metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the Deployment never got ready: %+v\nkwok:\n%s", d.Status, c.Log("kwok"))
		case <-time.After(300 * time.Millisecond):
		}
	}
	pods, err := c.Client.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=probe"})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning || !strings.HasPrefix(pods.Items[0].Spec.NodeName, "kwok-node-") {
		t.Fatalf("pods %+v, %v: want one Running on a kwok node", pods, err)
	}
	rc := c.ServiceAccount(t, "nobody", nil)
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments(c.Namespace).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a service account without rules listed deployments: %v", err)
	}
}
