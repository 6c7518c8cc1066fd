package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// Labels every object of the panel carries.
const (
	LabelManagedBy  = "app.kubernetes.io/managed-by"
	ManagedBy       = "mlpanel"
	LabelInstance   = "app.kubernetes.io/instance" // the workload's name; the Deployment's selector
	LabelProject    = "mlpanel.io/project"         // the project's id
	LabelKind       = "mlpanel.io/kind"            // KindProject, KindTracking or KindModel
	LabelDeployment = "mlpanel.io/deployment"      // a model server's deployment id
	LabelVersion    = "mlpanel.io/version"         // a model server's model version
)

// Kinds of objects, the values of LabelKind.
const (
	KindProject  = "project" // the anchor
	KindTracking = "tracking-server"
	KindModel    = "model-server"
)

// fieldManager owns the fields the panel applies (server-side apply).
const fieldManager = "mlpanel"

// Cluster runs workloads in one namespace.
type Cluster struct {
	Client    kubernetes.Interface
	Namespace string
	Image     string // the default image of workloads
}

// Workload is one server: a Deployment of one replica, its Service and,
// with a Volume, a PersistentVolumeClaim, all owned by the project's
// anchor.
type Workload struct {
	Name    string // of every object of the workload
	Project string // the project's id
	Kind    string // KindTracking or KindModel
	Labels  map[string]string
	Image   string // empty: the cluster's
	Command []string
	Env     map[string]string
	// Secret is environment that holds passwords: kept in a Secret of the
	// workload, never in the Deployment's spec.
	Secret map[string]string
	Port   int32
	Probe  string // the HTTP path that answers 200 once the server serves
	Volume *Volume
}

// Volume is the workload's PersistentVolumeClaim.
type Volume struct {
	MountPath    string
	Size         string // e.g. "10Gi"
	StorageClass string // empty: the cluster's default class
}

var nameRule = regexp.MustCompile(`[^a-z0-9-]+`)

// Name is a DNS label (what a Service name must be) made of parts.
func Name(parts ...string) string {
	s := nameRule.ReplaceAllString(strings.ToLower(strings.Join(parts, "-")), "-")
	s = strings.Trim(s, "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}

// AnchorName is the name of a project's anchor.
func AnchorName(project string) string { return Name("mlpanel-project", project) }

// Address is where a workload's Service answers inside the cluster.
func (c *Cluster) Address(name string, port int32) string {
	return "http://" + name + "." + c.Namespace + ".svc:" + strconv.Itoa(int(port))
}

// anchor is the project's ConfigMap that owns the rest, created on first
// use.
func (c *Cluster) anchor(ctx context.Context, project string) (metav1.OwnerReference, error) {
	name := AnchorName(project)
	cm, err := c.Client.CoreV1().ConfigMaps(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm, err = c.Client.CoreV1().ConfigMaps(c.Namespace).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				LabelManagedBy: ManagedBy, LabelProject: project, LabelKind: KindProject}},
			Data: map[string]string{"project": project, "note": "Owns this project's servers and volumes: deleting it deletes them."},
		}, metav1.CreateOptions{FieldManager: fieldManager})
		if apierrors.IsAlreadyExists(err) { // the other service made it a moment ago
			cm, err = c.Client.CoreV1().ConfigMaps(c.Namespace).Get(ctx, name, metav1.GetOptions{})
			err = c.refused(err, "get", "configmaps", name)
		} else {
			err = c.refused(err, "create", "configmaps", name)
		}
	} else {
		err = c.refused(err, "get", "configmaps", name)
	}
	if err != nil {
		return metav1.OwnerReference{}, err
	}
	return metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID}, nil
}

func (w Workload) labels() map[string]string {
	l := map[string]string{LabelManagedBy: ManagedBy, LabelInstance: w.Name, LabelProject: w.Project, LabelKind: w.Kind}
	for k, v := range w.Labels {
		l[k] = v
	}
	return l
}

// Apply creates the workload's objects or brings them to w, with one
// replica: a stopped or sleeping workload starts.
func (c *Cluster) Apply(ctx context.Context, w Workload) error {
	owner, err := c.anchor(ctx, w.Project)
	if err != nil {
		return err
	}
	meta := func(kind, apiVersion string) (metav1.TypeMeta, metav1.ObjectMeta) {
		return metav1.TypeMeta{Kind: kind, APIVersion: apiVersion},
			metav1.ObjectMeta{Name: w.Name, Namespace: c.Namespace, Labels: w.labels(), OwnerReferences: []metav1.OwnerReference{owner}}
	}
	var env []corev1.EnvVar
	for _, k := range sortedKeys(w.Env) {
		env = append(env, corev1.EnvVar{Name: k, Value: w.Env[k]})
	}
	if len(w.Secret) > 0 {
		tm, om := meta("Secret", "v1")
		sec := &corev1.Secret{TypeMeta: tm, ObjectMeta: om, StringData: w.Secret, Type: corev1.SecretTypeOpaque}
		if err := c.apply("secrets", w.Name, sec, func(b []byte, o metav1.PatchOptions) error {
			_, err := c.Client.CoreV1().Secrets(c.Namespace).Patch(ctx, w.Name, types.ApplyPatchType, b, o)
			return err
		}); err != nil {
			return err
		}
		for _, k := range sortedKeys(w.Secret) {
			env = append(env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: w.Name}, Key: k}}})
		}
	}
	pod := corev1.PodSpec{
		// MLflow stops within moments of SIGTERM; a sleep or an update
		// should not wait the default 30s for it.
		TerminationGracePeriodSeconds: ptr(int64(10)),
		// The images run as the unprivileged user 10001; fsGroup makes
		// the volume writable to it.
		SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr(int64(10001))},
		Containers: []corev1.Container{{
			Name:    "mlflow",
			Image:   cmpOr(w.Image, c.Image),
			Command: w.Command,
			Env:     env,
			Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: w.Port, Protocol: corev1.ProtocolTCP}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: w.Probe, Port: intstr.FromString("http")}},
				PeriodSeconds: 5, FailureThreshold: 3, TimeoutSeconds: 3,
			},
		}},
	}
	strategy := appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType}
	if w.Volume != nil {
		if err := c.claim(ctx, w, owner); err != nil {
			return err
		}
		pod.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: w.Name}}}}
		pod.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: w.Volume.MountPath}}
		// One writer on the volume (SQLite): the old pod goes before the
		// new one starts.
		strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	}
	tm, om := meta("Service", "v1")
	svc := &corev1.Service{TypeMeta: tm, ObjectMeta: om, Spec: corev1.ServiceSpec{
		Selector: map[string]string{LabelManagedBy: ManagedBy, LabelInstance: w.Name},
		Ports:    []corev1.ServicePort{{Name: "http", Port: w.Port, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
	}}
	if err := c.apply("services", w.Name, svc, func(b []byte, o metav1.PatchOptions) error {
		_, err := c.Client.CoreV1().Services(c.Namespace).Patch(ctx, w.Name, types.ApplyPatchType, b, o)
		return err
	}); err != nil {
		return err
	}
	tm, om = meta("Deployment", "apps/v1")
	dep := &appsv1.Deployment{TypeMeta: tm, ObjectMeta: om, Spec: appsv1.DeploymentSpec{
		Replicas: ptr(int32(1)),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelManagedBy: ManagedBy, LabelInstance: w.Name}},
		Strategy: strategy,
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: w.labels()}, Spec: pod},
	}}
	return c.apply("deployments", w.Name, dep, func(b []byte, o metav1.PatchOptions) error {
		_, err := c.Client.AppsV1().Deployments(c.Namespace).Patch(ctx, w.Name, types.ApplyPatchType, b, o)
		return err
	})
}

// apply server-side-applies obj: created when missing, else brought to
// obj, fields others own (the replica count a scale set) taken over.
func (c *Cluster) apply(resource, name string, obj any, patch func([]byte, metav1.PatchOptions) error) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encoding %s %s: %w", resource, name, err)
	}
	return c.refused(patch(b, metav1.PatchOptions{FieldManager: fieldManager, Force: ptr(true)}), "patch", resource, name)
}

// claim creates the workload's volume once; an existing claim is kept as
// it is (its size and class cannot change under a running server).
func (c *Cluster) claim(ctx context.Context, w Workload, owner metav1.OwnerReference) error {
	_, err := c.Client.CoreV1().PersistentVolumeClaims(c.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
	if err == nil || !apierrors.IsNotFound(err) {
		return c.refused(err, "get", "persistentvolumeclaims", w.Name)
	}
	size, err := resource.ParseQuantity(cmpOr(w.Volume.Size, "10Gi"))
	if err != nil {
		return fmt.Errorf("volume size %q of %s: %w: use a quantity such as 10Gi", w.Volume.Size, w.Name, err)
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: w.Name, Labels: w.labels(), OwnerReferences: []metav1.OwnerReference{owner}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
	if w.Volume.StorageClass != "" {
		pvc.Spec.StorageClassName = ptr(w.Volume.StorageClass)
	}
	_, err = c.Client.CoreV1().PersistentVolumeClaims(c.Namespace).Create(ctx, pvc, metav1.CreateOptions{FieldManager: fieldManager})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return c.refused(err, "create", "persistentvolumeclaims", w.Name)
}

// Scale sets the workload's replicas: 0 sleeps it (its objects and data
// stay), 1 wakes it.
func (c *Cluster) Scale(ctx context.Context, name string, replicas int32) error {
	b := []byte(`{"spec":{"replicas":` + strconv.Itoa(int(replicas)) + `}}`)
	_, err := c.Client.AppsV1().Deployments(c.Namespace).Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{FieldManager: fieldManager + "-scale"})
	return c.refused(err, "patch", "deployments", name)
}

// Delete removes the workload's server: its Deployment (its pods with
// it), Service and Secret. The volume stays with the project's anchor.
func (c *Cluster) Delete(ctx context.Context, name string) error {
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	if err := ignoreNotFound(c.Client.AppsV1().Deployments(c.Namespace).Delete(ctx, name, opts)); err != nil {
		return c.refused(err, "delete", "deployments", name)
	}
	if err := ignoreNotFound(c.Client.CoreV1().Services(c.Namespace).Delete(ctx, name, opts)); err != nil {
		return c.refused(err, "delete", "services", name)
	}
	return c.refused(ignoreNotFound(c.Client.CoreV1().Secrets(c.Namespace).Delete(ctx, name, opts)), "delete", "secrets", name)
}

// DeleteProject removes the project's anchor; the cluster's garbage
// collector deletes everything it owns, volumes included.
func (c *Cluster) DeleteProject(ctx context.Context, project string) error {
	bg := metav1.DeletePropagationBackground
	name := AnchorName(project)
	err := c.Client.CoreV1().ConfigMaps(c.Namespace).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
	return c.refused(ignoreNotFound(err), "delete", "configmaps", name)
}

// Found is a workload the cluster runs.
type Found struct {
	Name     string
	Labels   map[string]string
	Replicas int32 // desired: 0 is asleep
}

// Find lists the panel's workloads whose labels match sel (e.g.
// {LabelKind: KindTracking}): what a restarted service adopts.
func (c *Cluster) Find(ctx context.Context, sel map[string]string) ([]Found, error) {
	all := map[string]string{LabelManagedBy: ManagedBy}
	for k, v := range sel {
		all[k] = v
	}
	list, err := c.Client.AppsV1().Deployments(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(all).String()})
	if err != nil {
		return nil, c.refused(err, "list", "deployments", "")
	}
	out := make([]Found, 0, len(list.Items))
	for _, d := range list.Items {
		if d.DeletionTimestamp != nil {
			continue
		}
		out = append(out, Found{Name: d.Name, Labels: d.Labels, Replicas: replicas(&d)})
	}
	return out, nil
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func ptr[T any](v T) *T { return &v }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Logs are the last lines of the output of the workload's newest pod;
// "" when it has none.
func (c *Cluster) Logs(ctx context.Context, name string, lines int64) (string, error) {
	pods, err := c.Client.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(map[string]string{LabelManagedBy: ManagedBy, LabelInstance: name}).String()})
	if err != nil {
		return "", c.refused(err, "list", "pods", "")
	}
	var newest *corev1.Pod
	for i := range pods.Items {
		if p := &pods.Items[i]; newest == nil || newest.CreationTimestamp.Before(&p.CreationTimestamp) {
			newest = p
		}
	}
	if newest == nil {
		return "", nil
	}
	b, err := c.Client.CoreV1().Pods(c.Namespace).GetLogs(newest.Name, &corev1.PodLogOptions{Container: "mlflow", TailLines: &lines}).DoRaw(ctx)
	if err != nil {
		return "", c.refused(err, "get", "pods/log", newest.Name)
	}
	return string(b), nil
}
