package webhooks

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// Config is how deliveries are attempted.
type Config struct {
	// RetryFor is how long an event is retried (from when it was
	// published) before it is given up (MLPANEL_WEBHOOK_RETRY_FOR).
	RetryFor time.Duration
	// MaxBackoff caps the wait between attempts, which doubles from one
	// second (MLPANEL_WEBHOOK_MAX_BACKOFF).
	MaxBackoff time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration
	// Resync is how often the dispatcher looks for webhooks another
	// gateway created or deleted.
	Resync time.Duration
}

// Dispatcher delivers events to webhooks. Each webhook has its own
// durable consumer on MLPANEL_EVENTS with one message in flight at a
// time (MaxAckPending 1): deliveries are in stream order per webhook, a
// failed one is retried (a delayed NAK) before any later event goes out,
// and an event is acknowledged only after the receiver answered 2xx, so a
// gateway that stops mid-delivery leaves it to be delivered again by the
// next one (at least once). Every gateway consumes every webhook's
// consumer; JetStream hands each message to one of them.
type Dispatcher struct {
	js     jetstream.JetStream
	store  *Store
	sealer *Sealer
	cfg    Config
	log    *slog.Logger
	client *http.Client
	seq    atomic.Int64

	mu      sync.Mutex
	running map[string]jetstream.ConsumeContext
}

// NewDispatcher builds a dispatcher whose deliveries obey guard.
func NewDispatcher(js jetstream.JetStream, store *Store, sealer *Sealer, guard Guard, cfg Config, log *slog.Logger) *Dispatcher {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 24 * time.Hour
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: guard.Control}
	client := &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			Proxy:               nil, // the address rules apply to what is dialled
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     60 * time.Second,
		},
		// A redirect could lead anywhere: it counts as a failed attempt.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Dispatcher{js: js, store: store, sealer: sealer, cfg: cfg, log: log.With("component", "webhooks"),
		client: client, running: map[string]jetstream.ConsumeContext{}}
}

// ConsumerName is the durable consumer of a webhook.
func ConsumerName(id string) string { return "webhook-" + id }

// Subscribe creates the webhook's consumer, which starts at the next
// event published, and starts delivering.
func (d *Dispatcher) Subscribe(ctx context.Context, h Webhook) error {
	_, err := d.js.CreateOrUpdateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{
		Durable:       ConsumerName(h.ID),
		Description:   "deliveries of webhook " + h.ID + " to " + h.URL,
		FilterSubject: events.SubjectPrefix + ".>",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.cfg.Timeout + 10*time.Second,
		MaxAckPending: 1,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("creating the consumer of webhook %s: %w", h.ID, err)
	}
	return d.attach(ctx, h)
}

// Unsubscribe stops delivering and deletes the consumer.
func (d *Dispatcher) Unsubscribe(ctx context.Context, id string) error {
	d.detach(id)
	err := d.js.DeleteConsumer(ctx, events.StreamName, ConsumerName(id))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("deleting the consumer of webhook %s: %w", id, err)
	}
	return nil
}

func (d *Dispatcher) detach(id string) {
	d.mu.Lock()
	cc := d.running[id]
	delete(d.running, id)
	d.mu.Unlock()
	if cc != nil {
		cc.Stop()
	}
}

func (d *Dispatcher) attach(ctx context.Context, h Webhook) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.running[h.ID]; ok {
		return nil
	}
	secret, err := d.sealer.Open(h.ID, h.Sealed)
	if err != nil {
		return err
	}
	cons, err := d.js.Consumer(ctx, events.StreamName, ConsumerName(h.ID))
	if err != nil {
		return fmt.Errorf("opening the consumer of webhook %s: %w", h.ID, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { d.handle(h, secret, m) },
		jetstream.PullMaxMessages(1), // one in flight anyway; don't hold more
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				d.log.Debug("webhook consumer", "webhook", h.ID, "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("consuming for webhook %s: %w", h.ID, err)
	}
	d.running[h.ID] = cc
	return nil
}

// Run delivers until ctx ends: it attaches every stored webhook, then
// keeps in step with webhooks other gateways create and delete.
func (d *Dispatcher) Run(ctx context.Context) {
	defer func() {
		d.mu.Lock()
		for id, cc := range d.running {
			cc.Stop()
			delete(d.running, id)
		}
		d.mu.Unlock()
	}()
	for {
		d.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.cfg.Resync):
		}
	}
}

func (d *Dispatcher) sync(ctx context.Context) {
	hooks, err := d.store.All(ctx)
	if err != nil {
		d.log.Warn("listing webhooks", "err", err)
		return
	}
	want := map[string]bool{}
	for _, h := range hooks {
		want[h.ID] = true
		if err := d.attach(ctx, h); err != nil && ctx.Err() == nil {
			d.log.Warn("attaching webhook", "webhook", h.ID, "err", err)
		}
	}
	d.mu.Lock()
	var gone []string
	for id := range d.running {
		if !want[id] {
			gone = append(gone, id)
		}
	}
	d.mu.Unlock()
	for _, id := range gone {
		d.detach(id)
	}
}

// Backoff is the wait before attempt n+1 after n failed ones.
func (d *Dispatcher) Backoff(n uint64) time.Duration {
	b := time.Second
	for i := uint64(1); i < n && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, d.cfg.MaxBackoff)
}

// handle delivers one message of a webhook's consumer.
func (d *Dispatcher) handle(h Webhook, secret string, m jetstream.Msg) {
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			ProjectID string `json:"project_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.ID == "" {
		_ = m.Term() // not an event: nothing to deliver
		return
	}
	if !h.Matches(ev.Type, projectOf(m.Subject(), ev.Data.ProjectID)) {
		_ = m.Ack()
		return
	}
	meta, err := m.Metadata()
	if err != nil {
		_ = m.Nak()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Timeout+5*time.Second)
	defer cancel()
	del := d.send(ctx, h, secret, ev.ID, ev.Type, m.Data())
	del.Attempt = int(meta.NumDelivered)
	switch {
	case del.Outcome == OutcomeDelivered:
		// Recorded before the ack: a crash between the two delivers again
		// (at least once), never loses the record of a delivery.
		d.record(del)
		_ = m.Ack()
	case time.Since(meta.Timestamp) > d.cfg.RetryFor:
		del.Outcome = OutcomeGaveUp
		d.record(del)
		_ = m.Term()
	default:
		d.record(del)
		_ = m.NakWithDelay(d.Backoff(meta.NumDelivered))
	}
}

// The outcomes of an attempt.
const (
	OutcomeDelivered = "delivered"
	OutcomeRetrying  = "retrying"
	OutcomeGaveUp    = "gave_up"
	OutcomeFailed    = "failed" // a ping that failed (pings are not retried)
)

// projectOf is the project an event belongs to: the subject names it for
// registry, run and project events; deployment events carry it in data.
func projectOf(subject, dataProject string) string {
	parts := strings.Split(subject, ".")
	switch {
	case len(parts) == 6:
		return parts[3]
	case len(parts) == 5 && parts[2] == "project":
		return parts[3]
	}
	return dataProject
}

func (d *Dispatcher) record(del Delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.store.Record(ctx, del); err != nil {
		d.log.Warn("recording a webhook delivery", "webhook", del.WebhookID, "err", err)
	}
}

// send makes one attempt.
func (d *Dispatcher) send(ctx context.Context, h Webhook, secret, id, typ string, body []byte) Delivery {
	del := Delivery{ID: newID(), WebhookID: h.ID, EventID: id, EventType: typ, At: time.Now().UTC(), Seq: d.seq.Add(1), Outcome: OutcomeRetrying}
	start := time.Now()
	defer func() { del.DurationMS = time.Since(start).Milliseconds() }()
	ts := time.Now()
	sig, err := Sign(secret, id, ts, body)
	if err != nil {
		del.Error = err.Error()
		return del
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		del.Error = err.Error()
		return del
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("User-Agent", "mlpanel-webhooks")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := d.client.Do(req)
	if err != nil {
		del.Error = err.Error()
		return del
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	del.StatusCode = resp.StatusCode
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		del.Outcome = OutcomeDelivered
	} else {
		del.Error = "the receiver answered " + resp.Status
	}
	return del
}

// Ping sends a test event (io.mlpanel.webhook.ping) once, records the
// attempt and returns it.
func (d *Dispatcher) Ping(ctx context.Context, h Webhook) (Delivery, error) {
	secret, err := d.sealer.Open(h.ID, h.Sealed)
	if err != nil {
		return Delivery{}, err
	}
	ev, err := events.New("mlpanel/gateway", "webhook", h.ID, "ping", map[string]string{"webhook_id": h.ID, "url": h.URL})
	if err != nil {
		return Delivery{}, err
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return Delivery{}, fmt.Errorf("encoding the ping: %w", err)
	}
	del := d.send(ctx, h, secret, ev.ID, ev.Type, body)
	del.Attempt = 1
	if del.Outcome != OutcomeDelivered {
		del.Outcome = OutcomeFailed
	}
	d.record(del)
	return del, nil
}

// NewID is a webhook or delivery id.
func NewID() string { return newID() }

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
