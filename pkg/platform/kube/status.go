package kube

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// State is what the cluster says of a workload.
type State string

const (
	Gone     State = "gone"     // no Deployment: stopped, deleted, or never started
	Asleep   State = "asleep"   // scaled to 0 and no pod left
	Starting State = "starting" // a pod is on its way to Ready, or the last one is stopping
	Running  State = "running"  // a pod of the current spec is Ready
	Failed   State = "failed"   // it cannot get ready without a change (image, crash loop, quota)
)

// Status is a workload's state with the cluster's reason.
type Status struct {
	State    State
	Reason   string // the cluster's words for a state other than running
	Restarts int32  // container restarts of its pods
	Pods     []Pod  // its pods now
}

// Pod is one pod of a workload: a new UID is a pod the cluster replaced
// (a lost node, an eviction).
type Pod struct {
	UID      string
	Created  time.Time
	Restarts int32
}

// waitingFailures are the container states that do not heal by waiting.
var waitingFailures = []string{"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}

// Observe reads the workload's state from its Deployment's conditions and
// its pods' statuses.
func (c *Cluster) Observe(ctx context.Context, name string) (Status, error) {
	d, err := c.Client.AppsV1().Deployments(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if ignoreNotFound(err) == nil {
			return Status{State: Gone}, nil
		}
		return Status{}, c.refused(err, "get", "deployments", name)
	}
	if d.DeletionTimestamp != nil {
		return Status{State: Gone, Reason: "being deleted"}, nil
	}
	pods, err := c.Client.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(d.Spec.Selector.MatchLabels).String()})
	if err != nil {
		return Status{}, c.refused(err, "list", "pods", "")
	}
	return status(d, pods.Items), nil
}

func status(d *appsv1.Deployment, pods []corev1.Pod) Status {
	var st Status
	var problems []string
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue // on its way out (scaled down, replaced by an update)
		}
		pod := Pod{UID: string(p.UID), Created: p.CreationTimestamp.Time}
		for _, cs := range p.Status.ContainerStatuses {
			st.Restarts += cs.RestartCount
			pod.Restarts += cs.RestartCount
			if w := cs.State.Waiting; w != nil && slices.Contains(waitingFailures, w.Reason) {
				problems = append(problems, fmt.Sprintf("pod %s: %s: %s", p.Name, w.Reason, w.Message))
			}
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
				st.Reason = fmt.Sprintf("pod %s cannot be scheduled: %s", p.Name, cond.Message)
			}
		}
		st.Pods = append(st.Pods, pod)
	}
	if replicas(d) == 0 {
		if len(pods) > 0 { // terminating ones too: asleep means no pod left
			return Status{State: Starting, Reason: "scaling to 0: a pod is still stopping", Restarts: st.Restarts, Pods: st.Pods}
		}
		return Status{State: Asleep, Restarts: st.Restarts}
	}
	for _, cond := range d.Status.Conditions {
		switch {
		case cond.Type == appsv1.DeploymentReplicaFailure && cond.Status == corev1.ConditionTrue:
			problems = append(problems, "deployment: "+cond.Reason+": "+cond.Message)
		case cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionFalse && cond.Reason == "ProgressDeadlineExceeded":
			problems = append(problems, "deployment: "+cond.Message)
		}
	}
	current := d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas >= 1 &&
		d.Status.UpdatedReplicas == d.Status.Replicas
	if current && d.Status.ReadyReplicas >= 1 {
		return Status{State: Running, Restarts: st.Restarts, Pods: st.Pods}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return Status{State: Failed, Reason: strings.Join(problems, "; "), Restarts: st.Restarts, Pods: st.Pods}
	}
	st.State = Starting
	if st.Reason == "" {
		st.Reason = fmt.Sprintf("%d of 1 replica ready", d.Status.ReadyReplicas)
	}
	return st
}

// WaitReady waits until the workload runs, fails, or ctx ends; the
// error of a failed or timed-out wait carries the cluster's reason.
func (c *Cluster) WaitReady(ctx context.Context, name string) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last := Status{State: Starting}
	for {
		st, err := c.Observe(ctx, name)
		switch {
		case err != nil && ctx.Err() == nil:
			return err
		case err == nil && st.State == Running:
			return nil
		case err == nil && st.State == Failed:
			return fmt.Errorf("%s does not get ready: %s", name, st.Reason)
		case err == nil && st.State == Gone:
			return fmt.Errorf("%s is gone: it was stopped or deleted while starting", name)
		case err == nil:
			last = st
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready in time (%s): %w", name, last.Reason, ctx.Err())
		case <-tick.C:
		}
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
