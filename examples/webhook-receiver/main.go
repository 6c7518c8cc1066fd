// Command webhook-receiver receives mlpanel webhooks: it checks each
// delivery's Standard Webhooks signature (webhook-id, webhook-timestamp,
// webhook-signature) with the secret the panel answered when the webhook
// was created, refuses anything else with 401, and prints one line per
// verified event. Copy it as the start of your own receiver.
//
//	WEBHOOK_SECRET=whsec_... go run . -addr 127.0.0.1:9000
//	curl -XPOST localhost:8080/webhooks -d '{"url": "http://127.0.0.1:9000/", "project_id": "churn", "types": ["io.mlpanel.model.alias_set"]}'
//
// (Deliveries to loopback need MLPANEL_WEBHOOK_ALLOW=127.0.0.0/8 on the panel.)
// A receiver should be idempotent on webhook-id: deliveries are at least
// once, so an event may come again after a failed or unanswered attempt.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Event is the CloudEvents 1.0 envelope mlpanel delivers.
type Event struct {
	ID      string          `json:"id"`
	Source  string          `json:"source"`
	Type    string          `json:"type"`
	Time    time.Time       `json:"time"`
	Subject string          `json:"subject"`
	Data    json.RawMessage `json:"data"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "where to listen")
	jsonOut := flag.Bool("json", false, "print each event as its JSON document (one line) instead of a summary")
	flag.Parse()
	secret := os.Getenv("WEBHOOK_SECRET")
	if secret == "" {
		log.Fatal("set WEBHOOK_SECRET to the webhook's secret (whsec_..., from the answer that created it)")
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		log.Fatalf("WEBHOOK_SECRET: %v", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("receiving on http://%s/", ln.Addr())
	srv := &http.Server{Handler: handler(wh, *jsonOut), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func handler(wh *standardwebhooks.Webhook, jsonOut bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "reading the body", http.StatusBadRequest)
			return
		}
		// Verify checks the HMAC and that the timestamp is within five
		// minutes, which stops replays of an old delivery.
		if err := wh.Verify(body, r.Header); err != nil {
			log.Printf("refused a delivery: %v", err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev Event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "not a CloudEvent", http.StatusBadRequest)
			return
		}
		if jsonOut {
			fmt.Println(string(body))
		} else {
			fmt.Printf("%s %s %s %s\n", ev.Time.Format(time.RFC3339), ev.Type, ev.Subject, ev.Data)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
