package events

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// SpecVersion is the CloudEvents version of the envelope.
const SpecVersion = "1.0"

// TypePrefix starts every CloudEvents type: io.mlpanel.<entity>.<type>.
const TypePrefix = "io.mlpanel"

// Event is a CloudEvents 1.0 structured-mode JSON envelope. Data is the whole
// entity after the change, so a subscriber never has to call back to learn
// the new state.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            time.Time       `json:"time"`
	Subject         string          `json:"subject"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`

	// Entity, EntityID and Change are not part of the envelope; they build
	// the NATS subject.
	Entity   string `json:"-"`
	EntityID string `json:"-"`
	Change   string `json:"-"`
	// natsSubject overrides the subject built from the three above, for
	// events whose subject also names their project (registry.go).
	natsSubject string
}

// New builds the event for one change of one entity. The id is random and
// fixed from here on, so publishing the same Event again (a retry) is
// deduplicated by JetStream.
func New(source, entity, entityID, change string, data any) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("encoding %s %s event data: %w", entity, change, err)
	}
	return Event{
		SpecVersion:     SpecVersion,
		ID:              newID(),
		Source:          source,
		Type:            TypePrefix + "." + entity + "." + change,
		Time:            time.Now().UTC(),
		Subject:         entity + "/" + entityID,
		DataContentType: "application/json",
		Data:            raw,
		Entity:          entity,
		EntityID:        entityID,
		Change:          change,
	}, nil
}

// NATSSubject is the subject the event is published on.
func (e Event) NATSSubject() string {
	if e.natsSubject != "" {
		return e.natsSubject
	}
	return Subject(e.Entity, e.EntityID, e.Change)
}

// Decode parses an event received from the stream.
func Decode(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("decoding event: %w", err)
	}
	if e.SpecVersion != SpecVersion {
		return Event{}, fmt.Errorf("decoding event: unsupported specversion %q", e.SpecVersion)
	}
	// Entity, EntityID and Change are not in the envelope; subscribers
	// still need them, and subject and type carry them.
	e.Entity, e.EntityID, _ = strings.Cut(e.Subject, "/")
	if rest, ok := strings.CutPrefix(e.Type, TypePrefix+"."+e.Entity+"."); ok {
		e.Change = rest
	}
	return e, nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux.
	return hex.EncodeToString(b[:])
}
