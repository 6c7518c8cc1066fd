// Command subscriber follows mlpanel deployments: it reads the deployment
// events from the MLPANEL_EVENTS JetStream stream with a durable consumer,
// so a restart resumes after the last event it acknowledged, and prints
// one line per event. Copy it as the start of your own integration; it
// needs nothing from mlpanel but the event format (docs/asyncapi.yaml).
//
//	go run . -nats nats://127.0.0.1:4222 -durable my-team
//	go run . -filter 'mlpanel.events.deployment.*.running' -json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Event is the CloudEvents 1.0 envelope mlpanel publishes.
type Event struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Time        time.Time       `json:"time"`
	Subject     string          `json:"subject"`
	Data        json.RawMessage `json:"data"`
}

// Deployment is the part of the event data this example prints.
type Deployment struct {
	ID        string `json:"id"`
	ProjectID string `json:"project_id"`
	ModelURI  string `json:"model_uri"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Stage     string `json:"stage"`
	URL       string `json:"url"`
	Error     string `json:"error"`
}

func main() {
	url := flag.String("nats", envOr("MLPANEL_NATS_URL", nats.DefaultURL), "NATS server of the panel")
	durable := flag.String("durable", "deployment-follower", "durable consumer name: the stream remembers what it acknowledged")
	filter := flag.String("filter", "mlpanel.events.deployment.>", "subject filter")
	fromStart := flag.Bool("all", false, "on the consumer's first start, deliver every stored event instead of new ones only")
	asJSON := flag.Bool("json", false, "print each event as one JSON line")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := follow(ctx, *url, *durable, *filter, *fromStart, *asJSON); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

func follow(ctx context.Context, url, durable, filter string, fromStart, asJSON bool) error {
	nc, err := nats.Connect(url, nats.Name("mlpanel-subscriber-"+durable), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", url, err)
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	policy := jetstream.DeliverNewPolicy
	if fromStart {
		policy = jetstream.DeliverAllPolicy
	}
	// CreateOrUpdate keeps the consumer's position when it exists already.
	cons, err := js.CreateOrUpdateConsumer(ctx, "MLPANEL_EVENTS", jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: filter,
		DeliverPolicy: policy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1, // one at a time: events of a deployment are handled in order
	})
	if err != nil {
		return fmt.Errorf("creating durable consumer %s: %w", durable, err)
	}
	log.Printf("following %s as %s", filter, durable)
	for ctx.Err() == nil {
		batch, err := cons.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("fetching: %w", err)
		}
		for msg := range batch.Messages() {
			if err := handle(msg.Data(), asJSON); err != nil {
				log.Printf("skipping a malformed event on %s: %v", msg.Subject(), err)
			}
			// Ack after handling: a crash before it redelivers the event,
			// so handlers should be idempotent on the event id.
			if err := msg.Ack(); err != nil {
				return fmt.Errorf("acknowledging: %w", err)
			}
		}
	}
	return ctx.Err()
}

func handle(raw []byte, asJSON bool) error {
	var ev Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return err
	}
	if asJSON {
		fmt.Println(string(raw))
		return nil
	}
	var d Deployment
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return err
	}
	line := fmt.Sprintf("%s %-28s deployment %s (%s, %s) status=%s", ev.Time.Format(time.RFC3339), ev.Type, d.ID, d.ModelURI, d.Type, d.Status)
	if d.Stage != "" {
		line += " stage=" + d.Stage
	}
	if d.URL != "" && d.Status == "running" {
		line += " url=" + d.URL
	}
	if d.Error != "" && d.Status == "failed" {
		line += " error=" + firstLine(d.Error)
	}
	fmt.Println(line)
	return nil
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
