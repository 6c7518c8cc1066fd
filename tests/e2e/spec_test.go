package e2e

import "github.com/mlpanel/mlpanel/cmd/mlpanel/stack"

// Every request and response of the end-to-end suites is checked against
// the gateway's OpenAPI document; TestMain fails the run on any mismatch.
func init() {
	serviceConfigurers = append(serviceConfigurers, func(cfg *stack.Config, home string) {
		cfg.Gateway.SpecCheck = true
	})
}
