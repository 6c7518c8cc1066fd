package adapters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/proto"

	"github.com/mlpanel/mlpanel/services/deployer/app"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// GCPConfig is where and how deployments of type gcp run.
type GCPConfig struct {
	// Project is the Google Cloud project; empty disables gcp deployments.
	// Credentials are Application Default Credentials.
	Project string `env:"MLPANEL_GCP_PROJECT"`
	// Zone is where instances are created.
	Zone string `env:"MLPANEL_GCP_ZONE" envDefault:"us-central1-a"`
	// MachineType is the instances' machine type.
	MachineType string `env:"MLPANEL_GCP_MACHINE_TYPE" envDefault:"e2-standard-2"`
	// Image is the boot image, a container-optimized OS.
	Image string `env:"MLPANEL_GCP_IMAGE" envDefault:"projects/cos-cloud/global/images/family/cos-stable"`
	// ServingImage is the container image with mlflow that serves the model.
	ServingImage string `env:"MLPANEL_GCP_SERVING_IMAGE" envDefault:"ghcr.io/mlflow/mlflow:v3.6.0"`
	// Network is the VPC network of the instances.
	Network string `env:"MLPANEL_GCP_NETWORK" envDefault:"global/networks/default"`
	// ServingPort is the port the model server listens on.
	ServingPort int `env:"MLPANEL_GCP_SERVING_PORT" envDefault:"8080"`
	// Firewall is the name of the rule that opens ServingPort.
	Firewall string `env:"MLPANEL_GCP_FIREWALL_RULE" envDefault:"mlpanel-model-serving"`
	// Tag is the network tag the rule targets.
	Tag string `env:"MLPANEL_GCP_NETWORK_TAG" envDefault:"mlpanel-model-serving"`
	// Endpoint overrides the Compute Engine API address and turns
	// authentication off: for tests against a fake server only.
	Endpoint string `env:"MLPANEL_GCP_ENDPOINT"`
	// StartTimeout bounds the time from insert to /ping answering.
	StartTimeout time.Duration `env:"MLPANEL_GCP_START_TIMEOUT" envDefault:"15m"`
	// PollEvery is how often a starting instance is polled.
	PollEvery time.Duration `env:"MLPANEL_GCP_POLL_INTERVAL" envDefault:"5s"`
}

// GCP runs each deployment on a Compute Engine instance of its own, with
// Application Default Credentials.
type GCP struct {
	cfg       GCPConfig
	home      string
	log       *slog.Logger
	instances *compute.InstancesClient
	firewalls *compute.FirewallsClient
	http      *http.Client
	fwMu      sync.Mutex
}

// NewGCP connects the Compute Engine clients.
func NewGCP(ctx context.Context, cfg GCPConfig, home string, log *slog.Logger) (*GCP, error) {
	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.Endpoint), option.WithoutAuthentication())
	}
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = 5 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 15 * time.Minute
	}
	inst, err := compute.NewInstancesRESTClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to Compute Engine (MLPANEL_GCP_PROJECT is set; check Application Default Credentials): %w", err)
	}
	fw, err := compute.NewFirewallsRESTClient(ctx, opts...)
	if err != nil {
		inst.Close()
		return nil, fmt.Errorf("connecting to Compute Engine firewalls: %w", err)
	}
	return &GCP{cfg: cfg, home: home, log: log, instances: inst, firewalls: fw,
		http: &http.Client{Timeout: 5 * time.Second}}, nil
}

// Close releases the clients.
func (g *GCP) Close() {
	g.instances.Close()
	g.firewalls.Close()
}

func (g *GCP) LogFile(d domain.Deployment) string {
	return filepath.Join(g.home, "deployments", d.ID, "gcp.log")
}

// TrackingURI is the project's public MLflow endpoint: the instance is
// elsewhere and fetches the model over the network.
func (g *GCP) TrackingURI(p app.Project) string { return p.MlflowURI }

// logf appends one line to the deployment's log, so a failed start shows
// what happened in GET /deployments/{id}/logs.
func (g *GCP) logf(d domain.Deployment, format string, args ...any) {
	path := g.LogFile(d)
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

var nameClean = regexp.MustCompile(`[^a-z0-9-]+`)

// instanceName is unique per start, so a new start never collides with
// an instance whose deletion is still running.
func instanceName(d domain.Deployment, now time.Time) string {
	id := nameClean.ReplaceAllString(strings.ToLower(d.ID), "-")
	return "mlpanel-dep-" + id + "-" + strconv.FormatInt(now.Unix(), 36)
}

// Start creates the instance, waits until it runs with an external IP,
// then until its model server answers /ping. Any failure deletes what was
// created, so nothing keeps costing money.
func (g *GCP) Start(ctx context.Context, t app.Target, progress func(domain.Stage)) (app.Server, error) {
	d := t.Deployment
	name := instanceName(d, time.Now())
	if err := g.ensureFirewall(ctx, d); err != nil {
		return nil, err
	}
	progress(domain.StageCreatingInstance)
	g.logf(d, "creating instance %s in %s/%s for %s", name, g.cfg.Project, g.cfg.Zone, d.ModelURI)
	op, err := g.instances.Insert(ctx, &computepb.InsertInstanceRequest{
		Project: g.cfg.Project, Zone: g.cfg.Zone,
		InstanceResource: g.instanceSpec(name, t),
	})
	if err != nil {
		return nil, g.apiErr(d, "creating instance "+name, err)
	}
	srv := &gcpServer{g: g, name: name, port: g.cfg.ServingPort}
	cleanup := func(cause error) error {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := srv.Stop(dctx); err != nil {
			g.logf(d, "deleting instance %s after a failed start: %v", name, err)
			return fmt.Errorf("%w (and deleting instance %s failed: %v)", cause, name, err)
		}
		return cause
	}
	if err := op.Wait(ctx); err != nil {
		return nil, cleanup(g.apiErr(d, "waiting for the creation of instance "+name, err))
	}
	if err := opError(op.Proto()); err != nil {
		return nil, cleanup(g.apiErr(d, "creating instance "+name, err))
	}

	progress(domain.StageWaitingForIP)
	deadline := time.Now().Add(g.cfg.StartTimeout)
	for {
		inst, err := g.instances.Get(ctx, &computepb.GetInstanceRequest{Project: g.cfg.Project, Zone: g.cfg.Zone, Instance: name})
		if err != nil && ctx.Err() == nil && !isTransient(err) {
			return nil, cleanup(g.apiErr(d, "reading instance "+name, err))
		}
		if err == nil && inst.GetStatus() == "RUNNING" && natIP(inst) != "" {
			srv.ip = natIP(inst)
			break
		}
		if err := g.sleep(ctx, deadline, "instance "+name+" to run with an external IP"); err != nil {
			return nil, cleanup(err)
		}
	}
	g.logf(d, "instance %s runs with external IP %s", name, srv.ip)

	progress(domain.StageWaitingForServer)
	for !srv.Ready(ctx) {
		if err := g.sleep(ctx, deadline, "the model server on "+srv.url()+" to answer /ping"); err != nil {
			return nil, cleanup(err)
		}
	}
	g.logf(d, "model server answers on %s", srv.url())
	return srv, nil
}

// sleep waits one poll interval, or fails at the deadline or when ctx ends.
func (g *GCP) sleep(ctx context.Context, deadline time.Time, what string) error {
	if time.Now().After(deadline) {
		return fmt.Errorf("gave up after %s waiting for %s (MLPANEL_GCP_START_TIMEOUT)", g.cfg.StartTimeout, what)
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
	case <-time.After(g.cfg.PollEvery):
		return nil
	}
}

// instanceSpec is the insert body: the instance's own boot disk (deleted
// with it), an external IP, the network tag the firewall rule targets,
// and a startup script. No credentials travel in metadata: the instance
// fetches the model through the panel's public MLflow endpoint.
func (g *GCP) instanceSpec(name string, t app.Target) *computepb.Instance {
	d := t.Deployment
	return &computepb.Instance{
		Name:        proto.String(name),
		Description: proto.String("mlpanel deployment " + d.ID + ": " + d.ModelURI),
		MachineType: proto.String(fmt.Sprintf("zones/%s/machineTypes/%s", g.cfg.Zone, g.cfg.MachineType)),
		Disks: []*computepb.AttachedDisk{{
			Boot:       proto.Bool(true),
			AutoDelete: proto.Bool(true),
			Type:       proto.String("PERSISTENT"),
			InitializeParams: &computepb.AttachedDiskInitializeParams{
				SourceImage: proto.String(g.cfg.Image),
				DiskSizeGb:  proto.Int64(20),
			},
		}},
		NetworkInterfaces: []*computepb.NetworkInterface{{
			Network: proto.String(g.cfg.Network),
			AccessConfigs: []*computepb.AccessConfig{{
				Name: proto.String("External NAT"),
				Type: proto.String("ONE_TO_ONE_NAT"),
			}},
		}},
		Tags:   &computepb.Tags{Items: []string{g.cfg.Tag}},
		Labels: map[string]string{"mlpanel-deployment": nameClean.ReplaceAllString(strings.ToLower(d.ID), "-")},
		Metadata: &computepb.Metadata{Items: []*computepb.Items{
			{Key: proto.String("startup-script"), Value: proto.String(StartupScript(d, t.TrackingURI, g.cfg.ServingImage, g.cfg.ServingPort))},
			{Key: proto.String("mlpanel-model-uri"), Value: proto.String(d.ModelURI)},
			{Key: proto.String("mlpanel-tracking-uri"), Value: proto.String(t.TrackingURI)},
			{Key: proto.String("mlpanel-serving-port"), Value: proto.String(strconv.Itoa(g.cfg.ServingPort))},
		}},
	}
}

// StartupScript runs the model server container on the instance. Values
// are single-quoted for bash, so a model name with spaces is one argument.
func StartupScript(d domain.Deployment, trackingURI, image string, port int) string {
	p := strconv.Itoa(port)
	return strings.Join([]string{
		"#!/bin/bash",
		"# Written by mlpanel for deployment " + d.ID + ": serves " + d.ModelURI + " on port " + p + ".",
		"set -euo pipefail",
		"docker rm -f mlpanel-model >/dev/null 2>&1 || true",
		"docker run -d --name mlpanel-model --restart unless-stopped \\",
		"  -p " + p + ":" + p + " \\",
		"  -e MLFLOW_TRACKING_URI=" + shellQuote(trackingURI) + " \\",
		"  " + shellQuote(image) + " \\",
		"  mlflow models serve -m " + shellQuote(d.ModelURI) + " --env-manager local -h 0.0.0.0 -p " + p,
		"",
	}, "\n")
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// ensureFirewall makes sure one rule opens the serving port to instances
// with the tag; it is shared by every gcp deployment.
func (g *GCP) ensureFirewall(ctx context.Context, d domain.Deployment) error {
	g.fwMu.Lock()
	defer g.fwMu.Unlock()
	port := strconv.Itoa(g.cfg.ServingPort)
	fw, err := g.firewalls.Get(ctx, &computepb.GetFirewallRequest{Project: g.cfg.Project, Firewall: g.cfg.Firewall})
	if err == nil && firewallOpens(fw, port, g.cfg.Tag) {
		return nil
	}
	want := &computepb.Firewall{
		Name:         proto.String(g.cfg.Firewall),
		Description:  proto.String("mlpanel: opens the model serving port of deployment instances"),
		Network:      proto.String(g.cfg.Network),
		Direction:    proto.String("INGRESS"),
		Allowed:      []*computepb.Allowed{{IPProtocol: proto.String("tcp"), Ports: []string{port}}},
		TargetTags:   []string{g.cfg.Tag},
		SourceRanges: []string{"0.0.0.0/0"},
	}
	var op *compute.Operation
	switch {
	case err == nil:
		g.logf(d, "updating firewall rule %s to open tcp:%s for tag %s", g.cfg.Firewall, port, g.cfg.Tag)
		op, err = g.firewalls.Patch(ctx, &computepb.PatchFirewallRequest{Project: g.cfg.Project, Firewall: g.cfg.Firewall, FirewallResource: want})
	case httpCode(err) == http.StatusNotFound:
		g.logf(d, "creating firewall rule %s to open tcp:%s for tag %s", g.cfg.Firewall, port, g.cfg.Tag)
		op, err = g.firewalls.Insert(ctx, &computepb.InsertFirewallRequest{Project: g.cfg.Project, FirewallResource: want})
	}
	if err != nil {
		return g.apiErr(d, "preparing firewall rule "+g.cfg.Firewall, err)
	}
	if err := op.Wait(ctx); err != nil {
		return g.apiErr(d, "waiting for firewall rule "+g.cfg.Firewall, err)
	}
	if err := opError(op.Proto()); err != nil {
		return g.apiErr(d, "preparing firewall rule "+g.cfg.Firewall, err)
	}
	return nil
}

func firewallOpens(fw *computepb.Firewall, port, tag string) bool {
	if !slices.Contains(fw.GetTargetTags(), tag) || fw.GetDisabled() {
		return false
	}
	for _, a := range fw.GetAllowed() {
		if a.GetIPProtocol() == "tcp" && slices.Contains(a.GetPorts(), port) {
			return true
		}
	}
	return false
}

// Adopt re-attaches to the instance a deployment recorded.
func (g *GCP) Adopt(ctx context.Context, d domain.Deployment) (app.Server, bool) {
	if d.InstanceName == "" {
		return nil, false
	}
	inst, err := g.instances.Get(ctx, &computepb.GetInstanceRequest{Project: g.cfg.Project, Zone: g.cfg.Zone, Instance: d.InstanceName})
	if err != nil {
		if httpCode(err) == http.StatusNotFound {
			return nil, false
		}
		// The API is unreachable now; keep the instance and let the
		// liveness checks decide, rather than starting a second one.
		return &gcpServer{g: g, name: d.InstanceName, ip: d.Host, port: d.Port}, true
	}
	return &gcpServer{g: g, name: d.InstanceName, ip: natIP(inst), port: g.cfg.ServingPort}, true
}

// opError is the error field of a finished operation, which Wait does not
// report by itself.
func opError(op *computepb.Operation) error {
	if op == nil || op.GetError() == nil || len(op.GetError().GetErrors()) == 0 {
		return nil
	}
	var msgs []string
	permanent := false
	for _, e := range op.GetError().GetErrors() {
		msgs = append(msgs, e.GetCode()+": "+e.GetMessage())
		permanent = permanent || !strings.Contains(strings.ToUpper(e.GetCode()), "INTERNAL")
	}
	err := errors.New(strings.Join(msgs, "; "))
	if permanent {
		return &app.Permanent{Err: err}
	}
	return err
}

// apiErr logs a Compute Engine error and classifies it: a client error
// (quota, permission, not found, bad request) cannot be retried away.
func (g *GCP) apiErr(d domain.Deployment, what string, err error) error {
	msg := err.Error()
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Message != "" {
		msg = fmt.Sprintf("Compute Engine answered %d: %s", ge.Code, ge.Message)
	}
	out := fmt.Errorf("%s: %s", what, msg)
	g.logf(d, "%v", out)
	var perm *app.Permanent
	code := httpCode(err)
	if errors.As(err, &perm) || (code >= 400 && code < 500 && code != http.StatusTooManyRequests) {
		return &app.Permanent{Err: out}
	}
	return out
}

func httpCode(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	if ae, ok := apierror.FromError(err); ok {
		return ae.HTTPCode()
	}
	return 0
}

func isTransient(err error) bool {
	c := httpCode(err)
	return c == 0 || c == http.StatusTooManyRequests || c >= 500
}

func natIP(inst *computepb.Instance) string {
	for _, ni := range inst.GetNetworkInterfaces() {
		for _, ac := range ni.GetAccessConfigs() {
			if ip := ac.GetNatIP(); ip != "" {
				return ip
			}
		}
	}
	return ""
}

type gcpServer struct {
	g    *GCP
	name string
	ip   string
	port int

	mu        sync.Mutex
	checkedAt time.Time
	alive     bool
}

func (s *gcpServer) url() string { return "http://" + net.JoinHostPort(s.ip, strconv.Itoa(s.port)) }

func (s *gcpServer) Local() bool { return false }

// Alive asks Compute Engine at most every 15 seconds whether the instance
// still runs. An API error counts as alive: a blip must not replace a
// healthy instance.
func (s *gcpServer) Alive(ctx context.Context) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.checkedAt.IsZero() && time.Since(s.checkedAt) < 15*time.Second {
		return s.alive
	}
	inst, err := s.g.instances.Get(ctx, &computepb.GetInstanceRequest{Project: s.g.cfg.Project, Zone: s.g.cfg.Zone, Instance: s.name})
	switch {
	case err != nil && httpCode(err) == http.StatusNotFound:
		s.alive = false
	case err != nil:
		s.alive = true
	default:
		st := inst.GetStatus()
		s.alive = st == "RUNNING" || st == "PROVISIONING" || st == "STAGING"
		if ip := natIP(inst); ip != "" {
			s.ip = ip
		}
	}
	s.checkedAt = time.Now()
	return s.alive
}

func (s *gcpServer) Ready(ctx context.Context) bool {
	if s.ip == "" {
		return false
	}
	return ping(ctx, s.g.http, s.url())
}

// Stop deletes the instance (its boot disk goes with it); an instance
// that is already gone is stopped.
func (s *gcpServer) Stop(ctx context.Context) error {
	op, err := s.g.instances.Delete(ctx, &computepb.DeleteInstanceRequest{Project: s.g.cfg.Project, Zone: s.g.cfg.Zone, Instance: s.name})
	if httpCode(err) == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting instance %s: %w", s.name, err)
	}
	if err := op.Wait(ctx); err != nil {
		return fmt.Errorf("waiting for the deletion of instance %s: %w", s.name, err)
	}
	if err := opError(op.Proto()); err != nil {
		return fmt.Errorf("deleting instance %s: %w", s.name, err)
	}
	return nil
}

func (s *gcpServer) Predict(ctx context.Context, body []byte) error {
	return invoke(ctx, s.url(), body)
}

func (s *gcpServer) Apply(d *domain.Deployment) {
	d.Host, d.Port, d.URL, d.InstanceName = s.ip, s.port, s.url(), s.name
	d.Pid, d.PidStart = 0, 0
}
