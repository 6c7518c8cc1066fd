package deployments

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/mlpanel/mlpanel/pkg/platform/kube"
	"github.com/mlpanel/mlpanel/pkg/platform/kubetest"
)

// chartDir is the Helm chart that runs the panel on Kubernetes.
const chartDir = "kubernetes/mlpanel"

// chartServices are the panel's services the chart runs, by the
// component name of their Deployment.
var chartServices = []string{"projects", "tracking", "deployer", "gateway"}

// rendered is one object of the rendered chart: its template and the
// object decoded into its Go type.
type rendered struct {
	Template string
	YAML     string
	Obj      runtime.Object
}

// renderChart renders the chart with the Helm library as `helm install`
// would (release "mlpanel" in namespace ns) and decodes every object.
func renderChart(t testing.TB, ns string, values map[string]any) []rendered {
	t.Helper()
	ch, err := loader.Load(filepath.Join(repoRoot(t), "deployments", chartDir))
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	if err := chartutil.ValidateAgainstSchema(ch, values); err != nil {
		t.Fatalf("values: %v", err)
	}
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: "mlpanel", Namespace: ns, IsInstall: true, Revision: 1}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	var out []rendered
	for _, name := range sortedKeys(files) {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(files[name], "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s renders an object Kubernetes cannot decode: %v\n%s", name, err, doc)
			}
			out = append(out, rendered{Template: name, YAML: doc, Obj: obj})
		}
	}
	if len(out) == 0 {
		t.Fatal("the chart rendered no objects")
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func find[T runtime.Object](t testing.TB, objs []rendered, name string) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok && o.Obj.(metav1.Object).GetName() == name {
			return v
		}
	}
	var zero T
	t.Fatalf("the chart renders no %T named %s", zero, name)
	return zero
}

// containerEnv is a container's settings: plain values, and the names set
// from a Secret (value "<secret>").
func containerEnv(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			env[e.Name] = "<secret>"
			continue
		}
		env[e.Name] = e.Value
	}
	return env
}

// TestChartSettings: every MLPANEL_ setting a service reads is set by the
// chart or has a documented default; the chart sets nothing a service
// does not read; settings with a loopback default are set; NATS, MongoDB,
// the gateway's port and the images agree with the objects that provide
// them; both services that run servers run them on this namespace.
func TestChartSettings(t *testing.T) {
	objs := renderChart(t, "team", map[string]any{
		"auth":    map[string]any{"adminToken": "tok", "secretKey": "k"},
		"runtime": map[string]any{"projectDbUrl": "postgres://u:p@db:5432/postgres"},
	})
	code := codeSettings(t, repoRoot(t))
	docs := envExample(t, repoRoot(t))
	natsSvc := find[*corev1.Service](t, objs, "mlpanel-nats")
	mongoSvc := find[*corev1.Service](t, objs, "mlpanel-mongodb")

	envs := map[string]map[string]string{}
	for _, service := range chartServices {
		d := find[*appsv1.Deployment](t, objs, "mlpanel-"+service)
		c := d.Spec.Template.Spec.Containers[0]
		env := containerEnv(c)
		envs[service] = env
		if want := "mlpanel/" + service + ":latest"; c.Image != want {
			t.Errorf("%s runs image %s, want %s (the image deployments/docker/%s.Dockerfile builds)", service, c.Image, want, service)
		}
		reads := serviceSettings(code, service)
		if len(reads) == 0 {
			t.Fatalf("%s: found no settings: is the scanner looking in the right place?", service)
		}
		for _, name := range sortedKeys(reads) {
			if _, set := env["MLPANEL_"+name]; set {
				continue
			}
			if _, ok := docs[name]; !ok {
				t.Errorf("%s reads MLPANEL_%s (%s): neither set by the chart nor documented with a default in .env.example", service, name, reads[name][0].Where)
			}
			for _, r := range reads[name] {
				if loopback(r.Default) {
					t.Errorf("%s reads MLPANEL_%s with the loopback default %q (%s): the chart must set it", service, name, r.Default, r.Where)
					break
				}
			}
		}
		for key := range env {
			name, ok := strings.CutPrefix(key, "MLPANEL_")
			if !ok {
				continue
			}
			if _, read := reads[name]; !read {
				t.Errorf("%s: the chart sets %s, which the service does not read (typo, or a setting of another service?)", service, key)
			}
		}
		if got, want := env["MLPANEL_NATS_URL"], fmt.Sprintf("nats://%s:%d", natsSvc.Name, natsSvc.Spec.Ports[0].Port); got != want {
			t.Errorf("%s: MLPANEL_NATS_URL %q, want the chart's NATS service %q", service, got, want)
		}
		if _, usesMongo := reads["MONGO_URI"]; usesMongo {
			if got, want := env["MLPANEL_MONGO_URI"], fmt.Sprintf("mongodb://%s:%d/?replicaSet=rs0", mongoSvc.Name, mongoSvc.Spec.Ports[0].Port); got != want {
				t.Errorf("%s: MLPANEL_MONGO_URI %q, want the chart's MongoDB %q", service, got, want)
			}
		}
	}
	for _, service := range []string{"projects", "deployer"} {
		env := envs[service]
		for name, want := range map[string]string{
			"MLPANEL_RUNTIME":        "kubernetes",
			"MLPANEL_KUBE_NAMESPACE": "team",
			"MLPANEL_KUBE_IMAGE":     "mlpanel/projects:latest",
			"MLPANEL_MLFLOW":         "/opt/venv/bin/mlflow",
		} {
			if env[name] != want {
				t.Errorf("%s: %s=%q, want %q", service, name, env[name], want)
			}
		}
	}
	if envs["projects"]["MLPANEL_PROJECT_DB_URL"] != "<secret>" {
		t.Errorf("projects: MLPANEL_PROJECT_DB_URL holds a password: it must come from the chart's Secret, got %q", envs["projects"]["MLPANEL_PROJECT_DB_URL"])
	}
	for _, name := range []string{"MLPANEL_ADMIN_TOKEN", "MLPANEL_SECRET_KEY"} {
		if envs["gateway"][name] != "<secret>" {
			t.Errorf("gateway: %s must come from the chart's Secret, got %q", name, envs["gateway"][name])
		}
	}
	if envs["gateway"]["MLPANEL_AUTH"] != "true" {
		t.Error("gateway: a cluster install never runs without authentication: MLPANEL_AUTH must be true")
	}
	// The gateway listens where its container port and Service point.
	gw := find[*appsv1.Deployment](t, objs, "mlpanel-gateway").Spec.Template.Spec.Containers[0]
	gwSvc := find[*corev1.Service](t, objs, "mlpanel-gateway")
	if want := fmt.Sprintf("0.0.0.0:%d", gw.Ports[0].ContainerPort); envs["gateway"]["MLPANEL_HTTP_ADDR"] != want {
		t.Errorf("gateway: MLPANEL_HTTP_ADDR %q, want %q (its container port)", envs["gateway"]["MLPANEL_HTTP_ADDR"], want)
	}
	if tp := gwSvc.Spec.Ports[0].TargetPort.StrVal; tp != gw.Ports[0].Name {
		t.Errorf("the gateway Service targets port %q, the container names its port %q", tp, gw.Ports[0].Name)
	}
	if want := fmt.Sprintf("%s:%d", gwSvc.Name, gwSvc.Spec.Ports[0].Port); envs["projects"]["MLPANEL_HTTP_ADDR"] != want {
		t.Errorf("projects: MLPANEL_HTTP_ADDR %q, want the gateway's Service %q (mlflowUri with auth on)", envs["projects"]["MLPANEL_HTTP_ADDR"], want)
	}
	// Values override the wiring, per service and for all.
	over := renderChart(t, "team", map[string]any{
		"env":      map[string]any{"MLPANEL_LOG_LEVEL": "debug"},
		"projects": map[string]any{"env": map[string]any{"MLPANEL_LOG_LEVEL": "warn", "MLPANEL_MLFLOW_WORKERS": "4"}},
	})
	for service, want := range map[string]string{"projects": "warn", "tracking": "debug", "gateway": "debug"} {
		env := containerEnv(find[*appsv1.Deployment](t, over, "mlpanel-"+service).Spec.Template.Spec.Containers[0])
		if env["MLPANEL_LOG_LEVEL"] != want {
			t.Errorf("%s: MLPANEL_LOG_LEVEL=%q with env and projects.env values, want %q", service, env["MLPANEL_LOG_LEVEL"], want)
		}
	}
}

// verbs flattens rules into "group/resource verb" lines, sorted.
func verbs(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, g+"/"+res+" "+v)
				}
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// TestChartRBACIsTheRuntimesRules: the Role the chart grants the
// services that run servers is exactly what the runtime uses
// (kube.Rules, each verb of which a test in pkg/platform/kube proves
// needed), bound to the service account those two run as; the gateway and
// tracking hold no token.
func TestChartRBACIsTheRuntimesRules(t *testing.T) {
	objs := renderChart(t, "team", nil)
	role := find[*rbacv1.Role](t, objs, "mlpanel-runtime")
	if got, want := verbs(role.Rules), verbs(kube.PolicyRules()); !slices.Equal(got, want) {
		t.Errorf("the chart's Role grants\n  %s\nthe runtime uses (pkg/platform/kube.Rules)\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	binding := find[*rbacv1.RoleBinding](t, objs, "mlpanel-runtime")
	sa := find[*corev1.ServiceAccount](t, objs, "mlpanel-runtime")
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != sa.Name || binding.Subjects[0].Namespace != "team" {
		t.Errorf("the RoleBinding binds %+v to %+v, want the Role %s to the service account %s of the release's namespace", binding.RoleRef, binding.Subjects, role.Name, sa.Name)
	}
	for _, service := range chartServices {
		spec := find[*appsv1.Deployment](t, objs, "mlpanel-"+service).Spec.Template.Spec
		runsServers := service == "projects" || service == "deployer"
		switch {
		case runsServers && spec.ServiceAccountName != sa.Name:
			t.Errorf("%s runs as service account %q, want %s (it starts servers)", service, spec.ServiceAccountName, sa.Name)
		case !runsServers && (spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken):
			t.Errorf("%s starts no servers but mounts a service account token", service)
		}
	}
}

// TestChartAppliesToTheAPIServer sends every object of the chart to a
// real API server with server-side dry-run: the server validates them as
// it would on `helm install` (schemas, unknown fields, RBAC escalation
// rules), and stores nothing. Then the chart's service account, Role and
// binding, created for real, are enough for every call of the runtime.
func TestChartAppliesToTheAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	objs := renderChart(t, c.Namespace, map[string]any{"auth": map[string]any{"adminToken": "tok"}})
	dyn, err := dynamic.NewForConfig(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kinds := map[string]int{}
	for _, o := range objs {
		// The rendered YAML as it is, not the decoded object: a field the
		// API does not know must reach the server's strict validation.
		js, err := yaml.YAMLToJSON([]byte(o.YAML))
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatal(err)
		}
		gvk := o.Obj.GetObjectKind().GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: the API server does not serve %s: %v", o.Template, gvk, err)
		}
		if _, err := dyn.Resource(m.Resource).Namespace(c.Namespace).Create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}); err != nil {
			t.Errorf("%s: the API server refuses %s %s: %v", o.Template, gvk.Kind, u.GetName(), err)
		}
		kinds[gvk.Kind]++
	}
	for _, k := range []string{"Deployment", "StatefulSet", "Service", "ServiceAccount", "Role", "RoleBinding", "Secret", "PersistentVolumeClaim"} {
		if kinds[k] == 0 {
			t.Errorf("the chart has no %s", k)
		}
	}
	// Dry-run stored nothing.
	if list, err := c.Client.AppsV1().Deployments(c.Namespace).List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Errorf("a dry run left deployments behind: %v %v", list, err)
	}

	// The chart's service account, Role and binding for real: with its
	// token the runtime starts, observes, sleeps, removes a server and
	// deletes its project.
	for _, o := range objs {
		var err error
		switch v := o.Obj.(type) {
		case *corev1.ServiceAccount:
			_, err = c.Client.CoreV1().ServiceAccounts(c.Namespace).Create(ctx, v, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = c.Client.RbacV1().Roles(c.Namespace).Create(ctx, v, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = c.Client.RbacV1().RoleBindings(c.Namespace).Create(ctx, v, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	tok, err := c.Client.CoreV1().ServiceAccounts(c.Namespace).CreateToken(ctx, "mlpanel-runtime", &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc := rest.AnonymousClientConfig(c.Admin)
	rc.BearerToken = tok.Status.Token
	k, err := kube.NewCluster(rc, c.Namespace, "mlpanel/projects:latest")
	if err != nil {
		t.Fatal(err)
	}
	w := kube.Workload{Name: "mlpanel-tracking-1", Project: "1", Kind: kube.KindTracking, Command: []string{"mlflow", "server"},
		Secret: map[string]string{"MLFLOW_BACKEND_STORE_URI": "postgresql://u:p@db/x"}, Port: 5000, Probe: "/health",
		Volume: &kube.Volume{MountPath: "/data", Size: "1Gi"}}
	steps := []struct {
		what string
		do   func() error
	}{
		{"apply", func() error { return k.Apply(ctx, w) }},
		{"observe", func() error { _, err := k.Observe(ctx, w.Name); return err }},
		{"find", func() error { _, err := k.Find(ctx, map[string]string{kube.LabelProject: "1"}); return err }},
		{"logs", func() error {
			if _, err := k.Logs(ctx, w.Name, 10); apierrors.IsForbidden(err) {
				return err
			}
			return nil
		}},
		{"sleep", func() error { return k.Scale(ctx, w.Name, 0) }},
		{"wake", func() error { return k.Apply(ctx, w) }},
		{"remove", func() error { return k.Delete(ctx, w.Name) }},
		{"delete the project", func() error { return k.DeleteProject(ctx, "1") }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s with the chart's service account: %v", s.what, err)
		}
	}
}
