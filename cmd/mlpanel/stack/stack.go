// Package stack starts the whole panel in one process: embedded NATS and
// FerretDB (unless external URLs are given), every service, and the
// gateway. `mlpanel` runs it until Ctrl-C; end-to-end tests run it too,
// and stop and start single services to prove adoption and recovery.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/embedded"
	"github.com/mlpanel/mlpanel/services/deployer"
	"github.com/mlpanel/mlpanel/services/gateway"
	"github.com/mlpanel/mlpanel/services/projects"
	"github.com/mlpanel/mlpanel/services/tracking"
)

// Config is the all-in-one configuration: its own settings (tagged, see
// pkg/platform/conf) and each service's Config, loaded by that service's
// ConfigFromEnv.
type Config struct {
	// Home is the data home, the projects service's (MLPANEL_HOME).
	Home string
	// NATSURL is an external NATS; empty runs the embedded one.
	NATSURL string `env:"MLPANEL_NATS_URL"`
	// NATSListen is where the embedded NATS listens.
	NATSListen string `env:"MLPANEL_NATS_LISTEN" envDefault:"127.0.0.1:4222"`
	// MongoURI is an external MongoDB; empty runs embedded FerretDB.
	MongoURI string `env:"MLPANEL_MONGO_URI"`
	// MongoListen is where the embedded FerretDB listens.
	MongoListen string `env:"MLPANEL_MONGO_LISTEN" envDefault:"127.0.0.1:27027"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"MLPANEL_LOG_LEVEL" envDefault:"info"`

	Projects projects.Config `env:"-"`
	Tracking tracking.Config `env:"-"`
	Deployer deployer.Config `env:"-"`
	Gateway  gateway.Config  `env:"-"`
}

// Settings are the settings structs the all-in-one loads: its -h lists
// them and the documentation checks (deployments) read them.
var Settings = []any{Config{}, projects.Config{}, tracking.Config{}, deployer.Config{}, gateway.Config{}}

// ConfigFromEnv loads every MLPANEL_* setting the stack uses; a malformed
// one is an error naming it (all of them, when there are several).
func ConfigFromEnv() (Config, error) {
	var c Config
	errs := []error{conf.Load(&c)}
	var err error
	c.Projects, err = projects.ConfigFromEnv()
	errs = append(errs, err)
	c.Tracking, err = tracking.ConfigFromEnv()
	errs = append(errs, err)
	c.Deployer, err = deployer.ConfigFromEnv()
	errs = append(errs, err)
	c.Gateway, err = gateway.ConfigFromEnv()
	errs = append(errs, err)
	c.Home = c.Projects.Home
	return c, errors.Join(errs...)
}

// Stack is a running panel.
type Stack struct {
	cfg     Config
	log     *slog.Logger
	URL     string // the gateway's base URL
	Gateway *gateway.Gateway
	NC      *nats.Conn
	Mongo   *mongo.Client

	natsSrv *embedded.NATS
	ferret  *embedded.FerretDB
	ln      net.Listener

	mu       sync.Mutex
	services map[string]*running
}

type running struct {
	cancel context.CancelFunc
	done   chan error
}

// Start brings everything up; on error, whatever started is stopped.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Stack, err error) {
	s := &Stack{cfg: cfg, log: log, services: map[string]*running{}}
	defer func() {
		if err != nil {
			s.Close() // s, not the nil the error path returns
		}
	}()
	if err := os.MkdirAll(cfg.Home, 0o755); err != nil {
		return nil, fmt.Errorf("creating data home %s: %w", cfg.Home, err)
	}
	natsURL := cfg.NATSURL
	if natsURL == "" {
		if s.natsSrv, err = embedded.StartNATS(filepath.Join(cfg.Home, "nats"), cfg.NATSListen, embedded.WithLogger(log)); err != nil {
			return nil, err
		}
		natsURL = s.natsSrv.ClientURL()
		log.Info("embedded NATS with JetStream", "url", natsURL)
	}
	mongoURI := cfg.MongoURI
	if mongoURI == "" {
		if s.ferret, err = embedded.StartFerretDB(ctx, filepath.Join(cfg.Home, "ferretdb"), cfg.MongoListen, embedded.WithLogger(log)); err != nil {
			return nil, err
		}
		mongoURI = s.ferret.URI()
		log.Info("embedded FerretDB (SQLite)", "uri", mongoURI)
	}
	if s.NC, err = boot.NATS(natsURL, "mlpanel", log); err != nil {
		return nil, err
	}
	if s.Mongo, err = boot.Mongo(ctx, mongoURI); err != nil {
		return nil, err
	}
	if s.ln, err = net.Listen("tcp", cfg.Gateway.Addr); err != nil {
		return nil, fmt.Errorf("listening on %s (MLPANEL_HTTP_ADDR): %w", cfg.Gateway.Addr, err)
	}
	s.URL = "http://" + s.ln.Addr().String()
	// The projects service advertises the gateway's proxy when auth is on:
	// one setting, and the address the gateway really listens on.
	s.cfg.Projects.Auth = cfg.Gateway.Auth
	if host, port, err := net.SplitHostPort(s.ln.Addr().String()); err == nil {
		s.cfg.Projects.GatewayURL = "http://" + net.JoinHostPort(conf.Reachable(host), port)
	}
	for _, name := range serviceOrder {
		if err := s.StartService(name); err != nil {
			return nil, err
		}
	}
	cfg.Gateway.Webhooks.Home = cfg.Home // a generated webhook secret key lives in the data home
	if cfg.Gateway.AuditJournal == "" {
		// One machine, one data home: a write's audit entry waits for an
		// append to a local file, not a NATS round trip (services/gateway/auditjournal.go).
		cfg.Gateway.AuditJournal = filepath.Join(cfg.Home, "audit-journal")
	}
	s.Gateway = gateway.New(cfg.Gateway, s.NC, s.Mongo.Database(boot.Database), log)
	s.launch("gateway", func(ctx context.Context) error { return s.Gateway.Serve(ctx, s.ln) })
	return s, nil
}

// serviceOrder is the order services start in and the reverse of the
// order they stop in.
var serviceOrder = []string{"projects", "tracking", "deployer"}

func (s *Stack) runner(name string) (func(ctx context.Context) error, error) {
	db := s.Mongo.Database(boot.Database)
	switch name {
	case "projects":
		return func(ctx context.Context) error { return projects.Run(ctx, s.cfg.Projects, s.NC, db, s.log) }, nil
	case "tracking":
		return func(ctx context.Context) error { return tracking.Run(ctx, s.cfg.Tracking, s.NC, s.log) }, nil
	case "deployer":
		return func(ctx context.Context) error { return deployer.Run(ctx, s.cfg.Deployer, s.NC, db, s.log) }, nil
	}
	return nil, fmt.Errorf("no service %q", name)
}

// StartService starts one service (again) and returns once it answers
// $SRV.PING, so callers never race its registration.
func (s *Stack) StartService(name string) error {
	fn, err := s.runner(name)
	if err != nil {
		return err
	}
	s.launch(name, fn)
	return s.waitReady(name, time.Minute)
}

// waitReady pings the micro service until it answers or the service
// stopped.
func (s *Stack) waitReady(name string, timeout time.Duration) error {
	s.mu.Lock()
	r := s.services[name]
	s.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := s.NC.Request("$SRV.PING."+name, nil, 500*time.Millisecond); err == nil {
			return nil
		}
		select {
		case err := <-r.done:
			r.done <- err
			return fmt.Errorf("service %s stopped while starting: %w", name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("service %s did not answer $SRV.PING.%s within %s", name, name, timeout)
}

func (s *Stack) launch(name string, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	s.mu.Lock()
	s.services[name] = r
	s.mu.Unlock()
	go func() {
		err := fn(ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("service stopped with an error", "service", name, "err", err)
		}
		r.done <- err
	}()
}

// StopService stops one service and waits for it.
func (s *Stack) StopService(name string) error {
	s.mu.Lock()
	r, ok := s.services[name]
	delete(s.services, name)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	r.cancel()
	return <-r.done
}

// Done reports the first service that stops by itself.
func (s *Stack) Done() <-chan string {
	out := make(chan string, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, r := range s.services {
		go func() {
			err := <-r.done
			r.done <- err // keep it for StopService
			select {
			case out <- fmt.Sprintf("%s stopped: %v", name, err):
			default:
			}
		}()
	}
	return out
}

// Close stops the gateway, the services (each stops what it started), and
// the embedded servers, in that order.
func (s *Stack) Close() {
	_ = s.StopService("gateway")
	for i := len(serviceOrder) - 1; i >= 0; i-- {
		_ = s.StopService(serviceOrder[i])
	}
	if s.ln != nil {
		s.ln.Close()
	}
	if s.NC != nil {
		_ = s.NC.Drain()
	}
	if s.Mongo != nil {
		_ = s.Mongo.Disconnect(context.Background())
	}
	if s.ferret != nil {
		s.ferret.Close()
	}
	if s.natsSrv != nil {
		s.natsSrv.Shutdown()
	}
}
