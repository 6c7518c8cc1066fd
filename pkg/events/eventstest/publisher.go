// Package eventstest records published events for the tests of
// services' use cases.
package eventstest

import (
	"context"
	"strings"
	"sync"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// Publisher records the change types it is asked to publish.
type Publisher struct {
	mu      sync.Mutex
	changes []string
}

// Publish records change.
func (p *Publisher) Publish(_ context.Context, entity, id, change string, data any) (events.Event, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.changes = append(p.changes, change)
	return events.Event{}, nil
}

// Changes is every change published so far, comma-separated.
func (p *Publisher) Changes() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.changes, ",")
}
