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
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
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

// checkNATS asks every instance of the service for its $SRV.INFO. Every
// mlpanel service sets the metadata events.HostMetadata to its host name
// (in a container: the container's), so with several replicas each
// container checks its own; an instance without it (another program of
// that name) passes when any instance answers.
func checkNATS(ctx context.Context, url, service string) error {
	nc, err := nats.Connect(url, nats.Name("healthcheck"), nats.Timeout(timeout))
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s: %w", url, err)
	}
	defer nc.Close()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("subscribing to %s: %w", inbox, err)
	}
	if err := nc.PublishRequest("$SRV.INFO."+service, inbox, nil); err != nil {
		return fmt.Errorf("asking $SRV.INFO.%s: %w", service, err)
	}
	host, _ := os.Hostname()
	answered, tagged := 0, false
	// The first answer may take a while (a busy service); the others come
	// right after it when they come at all.
	wait := timeout - 500*time.Millisecond
	for {
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		msg, err := sub.NextMsg(wait)
		if err != nil {
			break
		}
		wait = 300 * time.Millisecond
		var info struct {
			ID       string            `json:"id"`
			Metadata map[string]string `json:"metadata"`
		}
		// Only a micro INFO counts (not, say, a no-responders status).
		if json.Unmarshal(msg.Data, &info) != nil || info.ID == "" {
			continue
		}
		answered++
		if h, ok := info.Metadata[events.HostMetadata]; ok {
			tagged = true
			if h == host {
				return nil
			}
		}
	}
	switch {
	case answered == 0:
		return fmt.Errorf("no instance of service %s answers $SRV.INFO on %s", service, url)
	case tagged:
		return fmt.Errorf("%d instance(s) of %s answer, none on this host (%s)", answered, service, host)
	}
	return nil
}
