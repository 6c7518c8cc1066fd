package ports

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/services/deployer/app"
)

// RegistrySubjects are the registry's events. Subscribers filter on the
// CloudEvents type and data, not on the subject's model token, whose
// escaping is the publisher's business.
const RegistrySubjects = events.SubjectPrefix + ".model.>"

// Alias changes a following deployment reacts to at once.
var aliasChanges = map[string]bool{
	events.TypePrefix + ".model.alias_set":     true,
	events.TypePrefix + ".model.alias_deleted": true,
}

// aliasData is the part of an alias event's data that names the alias.
type aliasData struct {
	ProjectID json.RawMessage `json:"project_id"` // a string, or a number from some publisher
	Name      string          `json:"name"`
	Alias     string          `json:"alias"`
}

// FollowRegistry makes deployments that follow an alias look it up as soon
// as a registry event says it moved. A plain subscription is enough: the
// periodic resync catches what it misses (a deployer that was down, an
// alias moved straight in MLflow).
func FollowRegistry(nc *nats.Conn, svc *app.Service, log *slog.Logger) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(RegistrySubjects, func(m *nats.Msg) {
		ev, err := events.Decode(m.Data)
		if err != nil || !aliasChanges[ev.Type] {
			return
		}
		var d aliasData
		if err := json.Unmarshal(ev.Data, &d); err != nil || d.Name == "" || d.Alias == "" {
			log.Warn("ignoring an alias event without project_id, name and alias", "subject", m.Subject, "err", err)
			return
		}
		project := strings.Trim(string(d.ProjectID), `"`)
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := svc.AliasChanged(ctx, project, d.Name, d.Alias); err != nil {
			log.Warn("reacting to an alias event", "model", d.Name, "alias", d.Alias, "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to registry events on %s: %w", RegistrySubjects, err)
	}
	return sub, nil
}
