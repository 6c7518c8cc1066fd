package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig is the stream every service expects. Duplicates are
// detected within the window, which bounds how long a publisher may retry.
func StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Every mlpanel state change as a CloudEvent",
		Subjects:    []string{SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      30 * 24 * time.Hour,
		Duplicates:  2 * time.Minute,
	}
}

// EnsureStream creates the stream or brings an existing one to StreamConfig.
// Every service calls it at start, so start order does not matter.
func EnsureStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, StreamConfig())
	if err != nil {
		return nil, fmt.Errorf("ensuring stream %s: %w", StreamName, err)
	}
	return s, nil
}

// Publisher publishes events to JetStream and waits for the stream's ack.
type Publisher struct {
	js     jetstream.JetStream
	source string
}

// NewPublisher returns a publisher whose events carry source (e.g.
// "mlpanel/projects").
func NewPublisher(js jetstream.JetStream, source string) *Publisher {
	return &Publisher{js: js, source: source}
}

// Publish sends one change event. It retries a few times with the same
// Nats-Msg-Id, so a retry after a lost ack never stores the event twice.
func (p *Publisher) Publish(ctx context.Context, entity, id, change string, data any) (Event, error) {
	ev, err := New(p.source, entity, id, change, data)
	if err != nil {
		return Event{}, err
	}
	return ev, p.PublishEvent(ctx, ev)
}

// PublishEvent publishes a prepared event.
func (p *Publisher) PublishEvent(ctx context.Context, ev Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding event %s: %w", ev.Type, err)
	}
	msg := &nats.Msg{Subject: ev.NATSSubject(), Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("publishing %s: %w (last error: %v)", msg.Subject, ctx.Err(), lastErr)
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, lastErr = p.js.PublishMsg(actx, msg)
		cancel()
		if lastErr == nil {
			return nil
		}
		if errors.Is(lastErr, context.Canceled) {
			break
		}
	}
	return fmt.Errorf("publishing %s: %w", msg.Subject, lastErr)
}

// OpenStream opens JetStream on nc and ensures the events stream, which
// every publishing service does at start.
func OpenStream(ctx context.Context, nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("opening JetStream: %w", err)
	}
	if _, err := EnsureStream(ctx, js); err != nil {
		return nil, err
	}
	return js, nil
}

// LastSequence is the stream sequence of the newest event on subject (a
// filter with wildcards is fine), 0 when there is none. Registry events
// put it in their identity: a write repeated after other changes of the
// same model is a new event, while a retry of a write whose event is not
// yet stored reads the same sequence and is deduplicated.
func (p *Publisher) LastSequence(ctx context.Context, subject string) (uint64, error) {
	s, err := p.js.Stream(ctx, StreamName)
	if err != nil {
		return 0, fmt.Errorf("opening stream %s: %w", StreamName, err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the last event on %s: %w", subject, err)
	}
	return m.Sequence, nil
}
