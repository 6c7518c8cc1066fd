// Package client is the projects service's NATS contract for the code
// that calls it (the gateway, the tracking service, the deployer, tests):
// its subjects, request and reply types and one method per operation,
// so no caller builds a subject or a JSON envelope by hand. Resolver is
// the one cached project lookup they share.
package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/activity"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// Service is the projects service's NATS name and queue group.
const Service = "projects"

// Subject is the request/reply subject of one operation:
// mlpanel.projects.<op>.
func Subject(op string) string { return events.ControlSubject(Service, op) }

// Project is the projects service's entity, as every reply carries it.
type Project = domain.Project

// ExportPlan is the export operation's answer: the staged files of a
// project archive, which the caller streams and then releases.
type ExportPlan struct {
	Filename  string `json:"filename"`
	Dir       string `json:"dir"`
	Meta      string `json:"meta"`
	DB        string `json:"db"`
	Artifacts string `json:"artifacts"`
}

// Client calls the projects service. Errors are *events.Error with the
// service's status (404 for an unknown project) or the transport's
// (503 no service, 504 no answer in time).
type Client struct{ nc *nats.Conn }

// New returns a client on nc.
func New(nc *nats.Conn) Client { return Client{nc} }

func byID(ref string) events.Request { return events.Request{Path: map[string]string{"id": ref}} }

// Get returns the project with id or name ref. It is a plain Call, not
// CallIdempotent: services call it while they serve a request, also
// while their connection drains at shutdown, when no new reply
// subscription can be made.
func (c Client) Get(ctx context.Context, ref string) (Project, error) {
	var p Project
	err := events.Call(ctx, c.nc, Subject("get"), byID(ref), &p)
	return p, err
}

// Wake returns project ref once its server runs, waking it when it
// sleeps; ctx bounds the wait (the service's start timeout at most).
func (c Client) Wake(ctx context.Context, ref string) (Project, error) {
	var p Project
	err := events.Call(ctx, c.nc, Subject("wake"), byID(ref), &p)
	return p, err
}

// Run asks for project ref to run (a sleeping one wakes) without waiting
// for its server.
func (c Client) Run(ctx context.Context, ref string) error {
	return events.Call(ctx, c.nc, Subject("run"), byID(ref), nil)
}

// List returns one page of projects as req asks (list params, a caller
// and what a restricted caller may see).
func (c Client) List(ctx context.Context, req events.Request) (events.List[Project], error) {
	var l events.List[Project]
	err := events.CallIdempotent(ctx, c.nc, Subject("list"), req, &l)
	return l, err
}

// Export stages an archive of project ref for caller.
func (c Client) Export(ctx context.Context, ref, caller string) (ExportPlan, error) {
	req := byID(ref)
	req.Caller = caller
	var plan ExportPlan
	err := events.Call(ctx, c.nc, Subject("export"), req, &plan)
	return plan, err
}

// ReleaseExport removes an export's staging folder once it is sent.
func (c Client) ReleaseExport(ctx context.Context, dir string) error {
	body, err := json.Marshal(map[string]string{"dir": dir})
	if err != nil {
		return fmt.Errorf("encoding export release: %w", err)
	}
	return events.Call(ctx, c.nc, Subject("export.release"), events.Request{Body: body}, nil)
}

// ImportSlot names a new file under the data home to upload an archive to.
func (c Client) ImportSlot(ctx context.Context) (string, error) {
	var slot struct {
		Upload string `json:"upload"`
	}
	err := events.Call(ctx, c.nc, Subject("import.slot"), events.Request{}, &slot)
	return slot.Upload, err
}

// Import creates a project for caller from an archive: in names it
// ("name", "description") and says where the archive is ("upload" from
// ImportSlot, or "path" under the import root).
func (c Client) Import(ctx context.Context, in map[string]any, caller string) (Imported, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return Imported{}, fmt.Errorf("encoding import request: %w", err)
	}
	var p Imported
	err = events.Call(ctx, c.nc, Subject("import"), events.Request{Body: body, Caller: caller}, &p)
	return p, err
}

// Imported is a project made from an archive, with the members the
// archive named (user names and roles), for the gateway to restore: the
// projects service does not own accounts.
type Imported struct {
	Project
	ArchiveMembers json.RawMessage `json:"archiveMembers,omitempty"`
}

// Activity reports the projects used since the last report (their idle
// clocks restart).
func (c Client) Activity(ctx context.Context, r activity.Report) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding activity report: %w", err)
	}
	return events.Call(ctx, c.nc, activity.Subject, events.Request{Body: body}, nil)
}
