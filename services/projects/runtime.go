package projects

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/services/projects/adapters"
	"github.com/mlpanel/mlpanel/services/projects/adapters/mlflowdb"
	"github.com/mlpanel/mlpanel/services/projects/app"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// stopGrace is how long a local server has between SIGTERM and SIGKILL.
const stopGrace = 10 * time.Second

// builtRuntime is the runtime MLPANEL_RUNTIME names, with what the
// service needs to know of it beyond app.Runtime.
type builtRuntime struct {
	app.Runtime
	// stopOnExit: its servers die with this service unless stopped, so
	// MLPANEL_STOP_ON_EXIT applies. A cluster's servers are left to the
	// engine when the panel exits and adopted by the next start.
	stopOnExit bool
	sharedPid  func() int // the warm MLflow the servers fork from (stats); nil: none
	close      func()     // runs after the service stopped
}

// runtime builds the runtime MLPANEL_RUNTIME names: one case per
// runtime, whose settings are its own struct embedded in Config.
func (c Config) runtime(tool *mlflowdb.Tool, log *slog.Logger) (builtRuntime, error) {
	switch c.Runtime {
	case conf.RuntimeLocal:
		return c.localRuntime(tool, log), nil
	case conf.RuntimeNomad:
		return c.nomadRuntime(tool, log)
	case conf.RuntimeKubernetes:
		return c.kubeRuntime()
	}
	return builtRuntime{}, fmt.Errorf("MLPANEL_RUNTIME=%q: use local, nomad or kubernetes", c.Runtime)
}

// localRuntime runs each tracking server as a process group of this
// service: a fresh `mlflow server`, or a fork of the warm MLflow
// (MLPANEL_MLFLOW_PRELOAD). Starting a project whose database an older
// MLflow made migrates it first, behind a backup (mlflowdb.Upgrading).
func (c Config) localRuntime(tool *mlflowdb.Tool, log *slog.Logger) builtRuntime {
	launcher := c.servers()
	rt := builtRuntime{stopOnExit: true, close: func() {}}
	if c.Preload {
		launcher.Zygote = adapters.NewZygote(c.Mlflow, filepath.Join(c.Home, "mlflow-zygote.log"), c.StartTimeout)
		rt.close = launcher.Zygote.Close
		rt.sharedPid = launcher.Zygote.Pid
		go func() {
			if err := launcher.Zygote.Warm(); err != nil {
				log.Warn("the MLflow zygote did not start; projects will say why when they start", "err", err)
			}
		}()
	}
	servers := c.upgrading(launcher, tool, log)
	rt.Runtime = &adapters.Local{Servers: servers, Host: c.Host, StopGrace: stopGrace}
	return rt
}

// upgrading readies each project's database before its server starts:
// the empty database, MLflow's migrations, the panel's indexes.
func (c Config) upgrading(launcher *adapters.MLflowServers, tool *mlflowdb.Tool, log *slog.Logger) *mlflowdb.Upgrading {
	ix := map[domain.Backend]mlflowdb.Indexer{}
	for b, dbs := range c.databases() {
		if i, ok := dbs.(mlflowdb.Indexer); ok {
			ix[b] = i
		}
	}
	return &mlflowdb.Upgrading{Servers: launcher, Tool: tool, Log: log, TemplateDir: filepath.Join(c.Home, "templates"), Indexers: ix}
}

// kubeRuntime runs each tracking server as a Deployment on the cluster of
// MLPANEL_KUBECONFIG (or the one the service runs in); the servers stay
// when the service exits and are adopted by its next start.
func (c Config) kubeRuntime() (builtRuntime, error) {
	k, err := adapters.NewKube(c.Kube, c.Workers, c.Jobs, c.ProjectDBURL, c.ProjectMySQLURL)
	if err != nil {
		return builtRuntime{}, err
	}
	return builtRuntime{Runtime: k, close: func() {}}, nil
}

// nomadRuntime runs each tracking server as the Nomad job
// mlpanel-project-<id> (MLPANEL_NOMAD_*), on the databases the local
// runtime would have migrated. The jobs outlive the panel: its next
// start adopts them.
func (c Config) nomadRuntime(tool *mlflowdb.Tool, log *slog.Logger) (builtRuntime, error) {
	rt, err := nomadrt.New(c.Nomad)
	if err == nil {
		err = adapters.CheckArtifactsDestination("MLPANEL_NOMAD_ARTIFACTS_DESTINATION", c.NomadArtifacts)
	}
	if err != nil {
		return builtRuntime{}, fmt.Errorf("the projects service with MLPANEL_RUNTIME=nomad: %w (or run the servers on this machine with MLPANEL_RUNTIME=local)", err)
	}
	launcher := c.servers()
	db := c.upgrading(launcher, tool, log)
	return builtRuntime{Runtime: &adapters.Nomad{RT: rt, Server: launcher, Prepare: db.Prepare, Artifacts: c.NomadArtifacts}, close: func() {}}, nil
}
