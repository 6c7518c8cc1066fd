package events

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Operation answers one control-plane request.
type Operation func(ctx context.Context, r Request) (any, error)

// HostMetadata is the $SRV.INFO metadata key under which every instance
// names the host it runs on, so a container's healthcheck (deployments'
// healthcheck nats) checks the instance in that container, not any
// replica.
const HostMetadata = "host"

// AddService registers a micro service named name in a queue group of the
// same name, with one endpoint per operation on
// mlpanel.<name>.<operation>, each run under timeout. The instance
// advertises its host name (HostMetadata).
func AddService(nc *nats.Conn, name, version, description string, timeout time.Duration, ops map[string]Operation) (micro.Service, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("adding micro service %s: the host name: %w", name, err)
	}
	ms, err := micro.AddService(nc, micro.Config{
		Name: name, Version: version, Description: description, QueueGroup: name,
		Metadata: map[string]string{HostMetadata: host},
	})
	if err != nil {
		return nil, fmt.Errorf("adding micro service %s: %w", name, err)
	}
	g := ms.AddGroup(ControlPrefix + "." + name)
	for op, fn := range ops {
		// Endpoint names may not hold dots; the subject keeps them.
		endpoint := strings.ReplaceAll(op, ".", "_")
		if err := g.AddEndpoint(endpoint, handler(nc, timeout, fn), micro.WithEndpointSubject(op)); err != nil {
			_ = ms.Stop()
			return nil, fmt.Errorf("adding endpoint %s.%s: %w", name, op, err)
		}
	}
	return ms, nil
}
