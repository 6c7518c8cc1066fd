package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlpanel/mlpanel/services/gateway/access"
)

// Members travel in an archive's export.json by user name: user ids are
// each panel's own. The gateway owns members, so it adds them to an export
// and restores them after an import; the projects service only carries
// them (app.Meta.Members, app.Imported.ArchiveMembers).

// archivedMember is one member in export.json.
type archivedMember struct {
	User string      `json:"user"`
	Role access.Role `json:"role"`
}

// skippedMember is an archived member an import did not restore, and why.
type skippedMember struct {
	User   string `json:"user"`
	Role   string `json:"role"`
	Reason string `json:"reason"`
}

// membersReport tells the importer which of the archive's members were
// restored and which were not.
type membersReport struct {
	Restored []archivedMember `json:"restored"`
	Skipped  []skippedMember  `json:"skipped"`
}

// withMembers adds the project's members to export.json.
func (g *Gateway) withMembers(ctx context.Context, meta []byte) ([]byte, error) {
	if g.access == nil {
		return meta, nil // a gateway built without its store (route tests)
	}
	var doc map[string]json.RawMessage
	var head struct {
		Project struct {
			ID string `json:"id"`
		} `json:"project"`
	}
	if err := json.Unmarshal(meta, &doc); err != nil {
		return nil, fmt.Errorf("reading export.json: %w", err)
	}
	if err := json.Unmarshal(meta, &head); err != nil || head.Project.ID == "" {
		return nil, fmt.Errorf("export.json names no project: %v", err)
	}
	ms, err := g.access.Members(ctx, head.Project.ID)
	if err != nil {
		return nil, fmt.Errorf("reading the members of project %s: %w", head.Project.ID, err)
	}
	out := make([]archivedMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, archivedMember{User: m.User, Role: m.Role})
	}
	if doc["members"], err = json.Marshal(out); err != nil {
		return nil, err
	}
	return json.MarshalIndent(doc, "", "  ")
}

// restoreMembers makes the archive's members members of the imported
// project p, for the users this panel has; the others are reported, with
// what to do.
func (g *Gateway) restoreMembers(ctx context.Context, p projectInfo, raw json.RawMessage) (membersReport, error) {
	rep := membersReport{Restored: []archivedMember{}, Skipped: []skippedMember{}}
	if len(raw) == 0 || g.access == nil {
		return rep, nil
	}
	var ms []archivedMember
	if err := json.Unmarshal(raw, &ms); err != nil {
		rep.Skipped = append(rep.Skipped, skippedMember{Reason: "the archive's members list is malformed; add members with PUT /projects/{id}/members/{user}"})
		return rep, nil
	}
	for _, m := range ms {
		skip := func(reason string) {
			rep.Skipped = append(rep.Skipped, skippedMember{User: m.User, Role: string(m.Role), Reason: reason})
		}
		role, err := access.ParseRole(string(m.Role))
		if err != nil {
			skip(err.Error())
			continue
		}
		u, err := g.access.User(ctx, m.User)
		if errors.Is(err, access.ErrNotFound) {
			skip("no such user on this panel: an admin creates it with POST /users, then the owner adds it with PUT /projects/{id}/members/{user}")
			continue
		} else if err != nil {
			return rep, fmt.Errorf("restoring member %s of project %s: %w", m.User, p.ID, err)
		}
		if creatorOf(p).Is(u.Name, u.ID, u.CreatedAt) {
			skip("imported the project and owns it")
			continue
		}
		if err := g.access.SetMember(ctx, access.Member{Project: p.ID, User: u.Name, UserID: u.ID, Role: role}); err != nil {
			return rep, fmt.Errorf("restoring member %s of project %s: %w", m.User, p.ID, err)
		}
		rep.Restored = append(rep.Restored, archivedMember{User: u.Name, Role: role})
	}
	return rep, nil
}
