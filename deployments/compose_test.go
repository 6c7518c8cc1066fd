package deployments

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// appServices are the compose services built from this repository, by the
// folder of their code under services/.
var appServices = []string{"projects", "tracking", "deployer", "gateway"}

// loadCompose loads deployments/docker-compose.yml the way `docker compose`
// does (interpolation, merge keys, normalisation, consistency checks), but
// without reading any .env: the checks are about the file as shipped.
func loadCompose(t testing.TB) *types.Project {
	t.Helper()
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "deployments", "docker-compose.yml")},
		cli.WithWorkingDirectory(filepath.Join(root, "deployments")),
		cli.WithoutEnvironmentResolution,
		cli.WithEnv(nil),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("docker-compose.yml is not a valid compose file: %v", err)
	}
	return p
}

func TestComposeIsValid(t *testing.T) {
	p := loadCompose(t)
	if p.Name != "mlpanel" {
		t.Errorf("project name %q, want mlpanel (volume and container names derive from it)", p.Name)
	}
	want := append([]string{"mongo", "nats"}, appServices...)
	got := p.ServiceNames()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
}

// TestComposeBuilds checks every build context and Dockerfile exists, and
// that app services build from the repository root (the go.work layout).
func TestComposeBuilds(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	for _, name := range appServices {
		s := p.Services[name]
		if s.Build == nil {
			t.Errorf("%s: no build section", name)
			continue
		}
		ctxDir := s.Build.Context
		if !filepath.IsAbs(ctxDir) {
			ctxDir = filepath.Join(p.WorkingDir, ctxDir)
		}
		if st, err := os.Stat(ctxDir); err != nil || !st.IsDir() {
			t.Errorf("%s: build context %s does not exist (%v)", name, ctxDir, err)
			continue
		}
		if filepath.Clean(ctxDir) != filepath.Clean(root) {
			t.Errorf("%s: build context %s, want the repository root %s: the Go build needs every module of go.work", name, ctxDir, root)
		}
		df := s.Build.Dockerfile
		if !filepath.IsAbs(df) {
			df = filepath.Join(ctxDir, df)
		}
		if _, err := os.Stat(df); err != nil {
			t.Errorf("%s: Dockerfile %s: %v", name, df, err)
		}
		if !strings.Contains(filepath.Base(df), name) {
			t.Errorf("%s: builds from %s, which looks like another service's Dockerfile", name, df)
		}
		if s.Image == "" {
			t.Errorf("%s: no image name: `docker compose build` would name it after the folder", name)
		}
	}
	for _, name := range []string{"mongo", "nats"} {
		if p.Services[name].Build != nil || p.Services[name].Image == "" {
			t.Errorf("%s: want a stock image, not a build", name)
		}
	}
	if img := p.Services["mongo"].Image; !strings.HasPrefix(img, "mongo:7") {
		t.Errorf("mongo: image %s, want mongo:7", img)
	}
}

// TestComposeOnlyGatewayPublishes: everything else talks over the compose
// network; a published Mongo, NATS or tracking server would be an open door.
func TestComposeOnlyGatewayPublishes(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if name == "gateway" {
			if len(s.Ports) != 1 || s.Ports[0].Target != 8080 {
				t.Errorf("gateway: ports %+v, want exactly one, to container port 8080", s.Ports)
			}
			continue
		}
		if len(s.Ports) > 0 {
			t.Errorf("%s publishes %+v: only the gateway may publish a port", name, s.Ports)
		}
		if s.NetworkMode == "host" {
			t.Errorf("%s: network_mode host exposes every port it opens", name)
		}
	}
}

// TestComposeHealthAndRestart: every service has a real healthcheck and a
// restart policy, and services wait for healthy infrastructure.
func TestComposeHealthAndRestart(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
			t.Errorf("%s: no healthcheck", name)
		} else if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
			t.Errorf("%s: healthcheck without interval, timeout and retries", name)
		}
		restart := s.Restart
		if s.Deploy != nil && s.Deploy.RestartPolicy != nil {
			restart = s.Deploy.RestartPolicy.Condition
		}
		if restart == "" || restart == "no" || restart == "none" {
			t.Errorf("%s: no restart policy", name)
		}
	}
	code := codeSettings(t, repoRoot(t))
	for _, name := range appServices {
		s := p.Services[name]
		dep, ok := s.DependsOn["nats"]
		if !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: want depends_on nats with condition service_healthy, got %+v", name, s.DependsOn)
		}
		if _, usesMongo := serviceSettings(code, name)["MONGO_URI"]; usesMongo {
			if dep, ok := s.DependsOn["mongo"]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s reads MLPANEL_MONGO_URI: want depends_on mongo with condition service_healthy", name)
			}
		}
	}
}

// TestComposeInfrastructure: Mongo is a replica set with its data on a
// volume, NATS runs JetStream with its store on a volume.
func TestComposeInfrastructure(t *testing.T) {
	p := loadCompose(t)
	mongo := p.Services["mongo"]
	cmd := strings.Join(mongo.Command, " ")
	if !strings.Contains(cmd, "--replSet") {
		t.Errorf("mongo: command %q does not start a replica set", cmd)
	}
	if !strings.Contains(strings.Join(mongo.HealthCheck.Test, " "), "rs.initiate") {
		t.Error("mongo: nothing initiates the replica set on a fresh volume")
	}
	requireVolume(t, p, "mongo", "/data/db")

	nats := p.Services["nats"]
	args := nats.Command
	if !slices.Contains(args, "--jetstream") && !slices.Contains(args, "-js") {
		t.Errorf("nats: command %q does not enable JetStream", args)
	}
	store := ""
	for i, a := range args {
		if (a == "--store_dir" || a == "-sd") && i+1 < len(args) {
			store = args[i+1]
		}
	}
	if store == "" {
		t.Errorf("nats: command %q sets no --store_dir", args)
	} else {
		requireVolume(t, p, "nats", store)
	}
}

// requireVolume fails unless service mounts a named volume at target.
func requireVolume(t *testing.T, p *types.Project, service, target string) types.ServiceVolumeConfig {
	t.Helper()
	for _, v := range p.Services[service].Volumes {
		if v.Target == target {
			if v.Type != types.VolumeTypeVolume {
				t.Errorf("%s: %s is a %s mount, want a named volume", service, target, v.Type)
			}
			if _, ok := p.Volumes[v.Source]; !ok {
				t.Errorf("%s: volume %q is not declared under volumes:", service, v.Source)
			}
			return v
		}
	}
	t.Errorf("%s: no volume mounted at %s", service, target)
	return types.ServiceVolumeConfig{}
}

// serviceSettings are the settings a service's binary reads, by name.
func serviceSettings(all []setting, service string) map[string][]setting {
	out := map[string][]setting{}
	for _, s := range all {
		if s.Command == service {
			out[s.Name] = append(out[s.Name], s)
		}
	}
	return out
}

// TestComposeSettings: every MLPANEL_ setting a service reads is set in
// compose or has a documented default; the settings that must differ in a
// container are set; and compose sets nothing a service does not read (a
// typo would silently fall back to the default).
func TestComposeSettings(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	code := codeSettings(t, root)
	docs := envExample(t, root)
	env := func(service, name string) (string, bool) {
		v, ok := p.Services[service].Environment["MLPANEL_"+name]
		if !ok || v == nil {
			return "", false
		}
		return *v, true
	}

	for _, service := range appServices {
		reads := serviceSettings(code, service)
		if len(reads) == 0 {
			t.Errorf("%s: found no settings in services/%s: is the scanner looking in the right place?", service, service)
		}
		for _, name := range sortedKeys(reads) {
			if _, set := env(service, name); set {
				continue
			}
			if _, ok := docs[name]; !ok {
				t.Errorf("%s reads MLPANEL_%s (%s): neither set in docker-compose.yml nor documented with a default in .env.example",
					service, name, reads[name][0].Where)
			}
		}
		for key := range p.Services[service].Environment {
			name, ok := strings.CutPrefix(key, "MLPANEL_")
			if !ok {
				continue
			}
			if _, read := reads[name]; !read && pendingSettings[name] == "" {
				t.Errorf("%s: compose sets %s, which the service does not read (typo, or a setting of another service?)", service, key)
			}
		}

		// A loopback default is the container itself: unreachable from
		// other containers, and reaching nothing in them.
		for _, name := range sortedKeys(reads) {
			for _, r := range reads[name] {
				if loopback(r.Default) {
					if _, set := env(service, name); !set {
						t.Errorf("%s reads MLPANEL_%s with the loopback default %q (%s): compose must set it",
							service, name, r.Default, r.Where)
					}
					break
				}
			}
		}
		wantHost(t, p, service, "NATS_URL", "nats", "4222")
		if _, usesMongo := reads["MONGO_URI"]; usesMongo {
			wantHost(t, p, service, "MONGO_URI", "mongo", "27017")
			if u, _ := env(service, "MONGO_URI"); !strings.Contains(u, "replicaSet=") {
				t.Errorf("%s: MLPANEL_MONGO_URI %q does not name the replica set", service, u)
			}
		}
	}

	// The tracking servers must be reachable from other containers.
	wantEnv(t, p, "projects", "TRACKING_HOST", "0.0.0.0")
	wantEnv(t, p, "projects", "TRACKING_ADVERTISE_HOST", "projects")
	// So must the local model servers, once the deployer reads these.
	deployerReads := serviceSettings(code, "deployer")
	if _, ok := deployerReads["DEPLOY_HOST"]; ok {
		wantEnv(t, p, "deployer", "DEPLOY_HOST", "0.0.0.0")
	}
	if _, ok := deployerReads["DEPLOY_ADVERTISE_HOST"]; ok {
		wantEnv(t, p, "deployer", "DEPLOY_ADVERTISE_HOST", "deployer")
	}
	for _, s := range []string{"projects", "deployer"} {
		if v, ok := env(s, "MLFLOW"); !ok || !strings.HasPrefix(v, "/opt/venv/") {
			t.Errorf("%s: MLPANEL_MLFLOW %q, want the image's /opt/venv/bin/mlflow (the default looks for a .venv)", s, v)
		}
	}
	wantEnv(t, p, "gateway", "HTTP_ADDR", "0.0.0.0:8080")
	wantEnv(t, p, "gateway", "AUTH", "true")

	// projects and deployer share the workspace at the same MLPANEL_HOME:
	// the deployer serves models out of the projects' artifact stores by
	// the paths MLflow recorded.
	home, ok := env("projects", "HOME")
	if !ok {
		t.Fatal("projects: MLPANEL_HOME not set")
	}
	wantEnv(t, p, "deployer", "HOME", home)
	pv := requireVolume(t, p, "projects", home)
	dv := requireVolume(t, p, "deployer", home)
	if pv.Source != dv.Source || pv.ReadOnly || dv.ReadOnly {
		t.Errorf("projects and deployer must share one writable volume at %s, got %q and %q", home, pv.Source, dv.Source)
	}
	// tracking reads each project's MLflow database by the path projects
	// records (MLPANEL_HOME/...), read-only: MLflow is its only writer.
	tv := requireVolume(t, p, "tracking", home)
	if tv.Source != pv.Source || !tv.ReadOnly {
		t.Errorf("tracking must mount the projects' workspace volume %q read-only at %s, got %q (read-only %v)", pv.Source, home, tv.Source, tv.ReadOnly)
	}
}

// loopback reports whether a default names this host only.
func loopback(v string) bool {
	return strings.Contains(v, "127.0.0.1") || strings.Contains(v, "localhost") || strings.Contains(v, "[::1]")
}

func wantEnv(t *testing.T, p *types.Project, service, name, want string) {
	t.Helper()
	v := p.Services[service].Environment["MLPANEL_"+name]
	if v == nil || *v != want {
		got := "<unset>"
		if v != nil {
			got = *v
		}
		t.Errorf("%s: MLPANEL_%s=%s, want %s", service, name, got, want)
	}
}

// wantHost checks a URL setting points at a compose service.
func wantHost(t *testing.T, p *types.Project, service, name, host, port string) {
	t.Helper()
	v := p.Services[service].Environment["MLPANEL_"+name]
	if v == nil {
		t.Errorf("%s: MLPANEL_%s is not set: the default points at 127.0.0.1, i.e. the container itself", service, name)
		return
	}
	u, err := url.Parse(*v)
	if err != nil || u.Hostname() != host || u.Port() != port {
		t.Errorf("%s: MLPANEL_%s=%s, want the %s service at %s:%s", service, name, *v, host, host, port)
	}
	if _, ok := p.Services[host]; !ok {
		t.Errorf("%s: MLPANEL_%s points at %s, which is not a service", service, name, host)
	}
}
