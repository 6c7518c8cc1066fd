package deployer

import (
	"fmt"

	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/pkg/platform/nomadrt"
	"github.com/mlpanel/mlpanel/services/deployer/adapters"
	"github.com/mlpanel/mlpanel/services/deployer/app"
)

// localBackend builds the backend of deployments of type local on the
// runtime MLPANEL_RUNTIME names: one case per runtime. A cluster
// runtime's servers answer Local() false, so they outlive the deployer
// and are adopted. close runs after the service stopped.
func (c Config) localBackend() (backend app.Backend, close func() error, err error) {
	switch c.Runtime {
	case conf.RuntimeLocal:
		local := &adapters.Local{
			Mlflow: c.Mlflow, Home: c.Home, Host: c.Host, Advert: c.AdvertHost,
			Ports: c.Ports, Workers: c.Workers,
		}
		return local, local.Close, nil
	case conf.RuntimeNomad:
		rt, err := nomadrt.New(c.Nomad)
		if err != nil {
			return nil, nil, fmt.Errorf("the deployer service with MLPANEL_RUNTIME=nomad: %w (or run the servers on this machine with MLPANEL_RUNTIME=local)", err)
		}
		// Local lends the data home, workers and the relay to projects on
		// Unix sockets; it runs no server itself.
		local := &adapters.Local{Mlflow: c.Mlflow, Home: c.Home, Workers: c.Workers}
		return &adapters.Nomad{RT: rt, Local: local, Wait: c.StartTimeout}, local.Close, nil
	case conf.RuntimeKubernetes:
		k, err := adapters.NewKube(c.Kube, c.Home, c.Workers)
		if err != nil {
			return nil, nil, err
		}
		return k, func() error { return nil }, nil
	}
	return nil, nil, fmt.Errorf("MLPANEL_RUNTIME=%q: use local, nomad or kubernetes", c.Runtime)
}
