package webhooks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mlpanel/mlpanel/pkg/events"
)

// Entities whose events a filter may name with a wildcard
// (io.mlpanel.<entity>.*).
var entities = []string{events.EntityModel, events.EntityRun, "project", "deployment"}

// CheckTypes validates the event types of a filter: each a type the
// panel publishes (io.mlpanel.model.alias_set) or every type of one
// entity (io.mlpanel.model.*). Empty means every type.
func CheckTypes(types []string) error {
	known := events.KnownTypes()
	for _, t := range types {
		if slices.Contains(known, t) {
			continue
		}
		if ent, ok := strings.CutSuffix(t, ".*"); ok {
			if e, ok := strings.CutPrefix(ent, events.TypePrefix+"."); ok && slices.Contains(entities, e) {
				continue
			}
		}
		return fmt.Errorf("types: %q is not an event type: give types such as io.mlpanel.model.alias_set, or io.mlpanel.<entity>.* for all of %s (docs/events.md lists them)", t, strings.Join(entities, ", "))
	}
	return nil
}

// Matches reports whether an event of type typ of project projectID is
// one the webhook asked for.
func (h Webhook) Matches(typ, projectID string) bool {
	if len(h.Projects) > 0 && !slices.Contains(h.Projects, projectID) {
		return false
	}
	if len(h.Types) == 0 {
		return true
	}
	for _, t := range h.Types {
		if t == typ {
			return true
		}
		if p, ok := strings.CutSuffix(t, "*"); ok && strings.HasPrefix(typ, p) {
			return true
		}
	}
	return false
}
