// Command healthcheck is the container healthcheck of the mlpanel images.
// The services other than the gateway listen on no port: they are NATS
// micro services, so "healthy" means the service answers $SRV.PING on the
// NATS the container is configured with. Distroless images have no shell
// or curl, hence a tiny static binary.
//
//	healthcheck http http://127.0.0.1:8080/healthz
//	healthcheck nats projects        # uses MLPANEL_NATS_URL
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
)

// timeout stays below compose's healthcheck timeout, so a hung check
// reports a reason instead of being killed silently.
const timeout = 4 * time.Second

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: healthcheck http URL | healthcheck nats SERVICE")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	switch args[0] {
	case "http":
		return checkHTTP(ctx, args[1])
	case "nats":
		url := os.Getenv("MLPANEL_NATS_URL")
		if url == "" {
			url = nats.DefaultURL
		}
		return checkNATS(ctx, url, args[1])
	default:
		return fmt.Errorf("unknown check %q: want http or nats", args[0])
	}
}

func checkHTTP(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("building request for %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// checkNATS asks the micro framework's PING endpoint of the service. With
// several replicas any one answering passes: NATS has no way to address
// "the instance in this container" without knowing its generated id.
func checkNATS(ctx context.Context, url, service string) error {
	nc, err := nats.Connect(url, nats.Name("healthcheck"), nats.Timeout(timeout))
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s: %w", url, err)
	}
	defer nc.Close()
	if _, err := nc.RequestWithContext(ctx, "$SRV.PING."+service, nil); err != nil {
		return fmt.Errorf("service %s does not answer $SRV.PING on %s: %w", service, url, err)
	}
	return nil
}
