package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlpanel/mlpanel/services/gateway/access"
)

// The audit log is written through a durable queue: a call's entry is
// stored in JetStream (acknowledged, on disk) before the caller gets the
// answer, which costs one local round trip instead of a database insert,
// or, with a journal (auditjournal.go), appended to a local file before
// the answer and queued after it; a consumer moves entries to the audit
// collection. An entry not yet
// moved when a gateway dies is delivered again to the next one; inserts
// are idempotent by entry id, so none is lost or doubled.
const (
	auditStream   = "MLPANEL_AUDIT"
	auditSubject  = "mlpanel.audit.entries"
	auditConsumer = "audit-writer"
)

type auditQueue struct {
	js   jetstream.JetStream
	st   *access.Store
	cons jetstream.Consumer
	cc   jetstream.ConsumeContext
	log  *slog.Logger
}

func newAuditQueue(ctx context.Context, nc *nats.Conn, st *access.Store, log *slog.Logger) (*auditQueue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("opening JetStream for the audit queue: %w", err)
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        auditStream,
		Description: "Audit entries on their way to the audit collection",
		Subjects:    []string{auditSubject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("ensuring stream %s: %w", auditStream, err)
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       auditConsumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1000,
	})
	if err != nil {
		return nil, fmt.Errorf("ensuring consumer %s: %w", auditConsumer, err)
	}
	q := &auditQueue{js: js, st: st, cons: cons, log: log}
	q.cc, err = cons.Consume(q.store)
	if err != nil {
		return nil, fmt.Errorf("consuming %s: %w", auditStream, err)
	}
	return q, nil
}

// store moves one entry to the audit collection.
func (q *auditQueue) store(m jetstream.Msg) {
	var e access.Entry
	if err := json.Unmarshal(m.Data(), &e); err != nil {
		q.log.Error("dropping a malformed audit entry", "err", err)
		_ = m.Term()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.st.Record(ctx, e); err != nil {
		q.log.Warn("writing an audit entry; retrying", "id", e.ID, "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
}

// Record makes e durable. If the queue does not take it, the entry goes
// straight to the database, so it is never lost.
func (q *auditQueue) Record(ctx context.Context, e access.Entry) error {
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding audit entry: %w", err)
	}
	msg := &nats.Msg{Subject: auditSubject, Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, e.ID)
	if _, err = q.js.PublishMsg(ctx, msg); err == nil {
		return nil
	}
	if derr := q.st.Record(ctx, e); derr != nil {
		return errors.Join(fmt.Errorf("queueing audit entry: %w", err), derr)
	}
	return nil
}

// drain waits (at most until ctx ends) until every queued entry is in the
// collection, so GET /audit shows the calls made before it.
func (q *auditQueue) drain(ctx context.Context) {
	for {
		info, err := q.cons.Info(ctx)
		if err != nil || (info.NumPending == 0 && info.NumAckPending == 0) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// keepAudit makes one audit entry durable: in the journal when there is
// one (the queue gets it after the answer), else in the queue.
func (g *Gateway) keepAudit(ctx context.Context, e access.Entry) error {
	if g.journal != nil {
		return g.journal.Add(ctx, e)
	}
	return g.recordAudit(ctx, e)
}

// recordAudit keeps one audit entry: through the queue when there is one.
func (g *Gateway) recordAudit(ctx context.Context, e access.Entry) error {
	if g.audit != nil {
		return g.audit.Record(ctx, e)
	}
	return g.access.Record(ctx, e)
}

// stop lets the entry in hand finish; the rest wait in the stream for
// the next gateway.
func (q *auditQueue) stop() {
	if q.cc == nil {
		return
	}
	q.cc.Drain()
	select {
	case <-q.cc.Closed():
	case <-time.After(5 * time.Second):
	}
}
