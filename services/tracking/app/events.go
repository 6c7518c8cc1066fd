package app

import (
	"context"
	"fmt"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/mlmodel"
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

// Signatures reads a model version's MLmodel signature through its
// tracking server (mlmodel.Reader).
type Signatures interface {
	Signature(ctx context.Context, trackingURL, model, version string) (*mlmodel.Signature, error)
}

// UseSignatures makes version_created events carry the new version's
// signature; without it they carry none.
func (s *Service) UseSignatures(r Signatures) { s.signatures = r }

// signature is the signature of a version MLflow just created, for its
// version_created event: nil when the model has none, or when it cannot
// be read within mlmodel.EventWait (logged; the write stands).
func (t target) signature(ctx context.Context, model, version string) any {
	if t.s.signatures == nil || t.s.events == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mlmodel.EventWait)
	defer cancel()
	sig, err := t.s.signatures.Signature(ctx, t.p.InternalURL, model, version)
	if err != nil {
		t.s.log.Warn("reading the signature of a new model version; its version_created event goes without it",
			"project", t.p.ID, "model", model, "version", version, "err", err)
		return nil
	}
	if sig == nil {
		return nil // a nil *Signature in the event's any would not be omitted
	}
	return sig
}

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
