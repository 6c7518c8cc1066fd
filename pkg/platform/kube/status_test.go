package kube

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
)

func dep(replicas int32, ready int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Generation: 2},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: max(replicas, ready), UpdatedReplicas: max(replicas, ready),
			ReadyReplicas: ready, Conditions: conds},
	}
}

func pod(uid string, restarts int32, waiting string) corev1.Pod {
	cs := corev1.ContainerStatus{Name: "mlflow", RestartCount: restarts}
	if waiting != "" {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waiting, Message: "back-off restarting failed container"}
	}
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-" + uid, UID: k8stypes.UID("uid-" + uid)}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{cs}}}
}

// TestStatusFromConditions: what a user sees in `kubectl describe` is
// what the runtime reports: ready, starting with the scheduler's reason,
// failed with the kubelet's, asleep only once the last pod is gone.
func TestStatusFromConditions(t *testing.T) {
	unschedulable := pod("a", 0, "")
	unschedulable.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/2 nodes are available: 2 Insufficient memory."}}
	cases := []struct {
		name   string
		d      *appsv1.Deployment
		pods   []corev1.Pod
		want   State
		reason string
	}{
		{"ready", dep(1, 1), []corev1.Pod{pod("a", 0, "")}, Running, ""},
		{"a pod on its way", dep(1, 0), []corev1.Pod{pod("a", 0, "ContainerCreating")}, Starting, "0 of 1 replica ready"},
		{"unschedulable", dep(1, 0), []corev1.Pod{unschedulable}, Starting, "Insufficient memory"},
		{"crash loop", dep(1, 0), []corev1.Pod{pod("a", 4, "CrashLoopBackOff")}, Failed, "CrashLoopBackOff"},
		{"bad image", dep(1, 0), []corev1.Pod{pod("a", 0, "ImagePullBackOff")}, Failed, "ImagePullBackOff"},
		{"quota", dep(1, 0, appsv1.DeploymentCondition{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "exceeded quota"}), nil, Failed, "exceeded quota"},
		{"deadline", dep(1, 0, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet has timed out progressing"}), nil, Failed, "timed out"},
		{"scaling down", dep(0, 1), []corev1.Pod{pod("a", 0, "")}, Starting, "still stopping"},
		{"asleep", dep(0, 0), nil, Asleep, ""},
	}
	for _, c := range cases {
		got := status(c.d, c.pods)
		if got.State != c.want || !strings.Contains(got.Reason, c.reason) {
			t.Errorf("%s: %s (%q), want %s with %q", c.name, got.State, got.Reason, c.want, c.reason)
		}
	}
	// A pod of the old spec that is ready is not the new one running.
	old := dep(1, 1)
	old.Generation = 3
	if got := status(old, []corev1.Pod{pod("a", 0, "")}); got.State != Starting {
		t.Errorf("an update not yet rolled out: %s", got.State)
	}
	if got := status(dep(1, 1), []corev1.Pod{pod("a", 2, ""), pod("b", 1, "")}); got.Restarts != 3 || len(got.Pods) != 2 {
		t.Errorf("restarts %d over %d pods, want 3 over 2", got.Restarts, len(got.Pods))
	}
	// A pod on its way out is not one of the server's.
	leaving := pod("c", 5, "")
	leaving.DeletionTimestamp = &metav1.Time{}
	if got := status(dep(1, 1), []corev1.Pod{pod("a", 0, ""), leaving}); got.Restarts != 0 || len(got.Pods) != 1 {
		t.Errorf("with a terminating pod: restarts %d over %d pods, want 0 over 1", got.Restarts, len(got.Pods))
	}
}
