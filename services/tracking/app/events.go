package app

import (
	"context"
	"fmt"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// EventSource is the source of the registry events this service publishes.
const EventSource = "mlpanel/tracking"

// Events publishes registry events (*events.Publisher).
type Events interface {
	PublishEvent(ctx context.Context, ev events.Event) error
	LastSequence(ctx context.Context, subject string) (uint64, error)
}

// UseEvents makes registry writes through the REST API publish their
// events on the stream (the same ones as writes through the MLflow
// proxy, docs/events.md); without it they publish none.
func (s *Service) UseEvents(e Events) { s.events = e }

// lastSeq is the stream's last event of a model, for event identities
// (see events.NewModelEvent): read before the write.
func (t target) lastSeq(ctx context.Context, name string) string {
	if t.s.events == nil {
		return ""
	}
	n, err := t.s.events.LastSequence(ctx, events.ModelFilter(t.p.ID, name))
	if err != nil {
		t.s.log.Warn("reading the last registry event", "model", name, "err", err)
	}
	return fmt.Sprint(n)
}

// publish publishes a registry change MLflow confirmed; a failure is
// logged, never the call's (MLflow holds the truth and the write stands).
func (t target) publish(ctx context.Context, d events.ModelData, change string, identity ...string) {
	if t.s.events == nil {
		return
	}
	d.ProjectID = t.p.ID
	ev, err := events.NewModelEvent(EventSource, d, change, identity...)
	if err == nil {
		err = t.s.events.PublishEvent(context.WithoutCancel(ctx), ev)
	}
	if err != nil {
		t.s.log.Error("publishing a registry event", "model", d.Name, "change", change, "err", err)
	}
}
