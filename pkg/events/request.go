package events

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Request is what the gateway sends for every REST call: the path and
// query parameters by name and the body as JSON (form bodies are turned
// into a JSON object first, each field typed as the OpenAPI document
// types it). Services decode only what they
// need, so adding an endpoint never needs a new envelope.
type Request struct {
	Path  map[string]string `json:"path,omitempty"`
	Query map[string]string `json:"query,omitempty"`
	Body  json.RawMessage   `json:"body,omitempty"`
	List  ListParams        `json:"list,omitempty"`
	// Caller is the authenticated user's name, empty when auth is off;
	// it is for display (who created what). Ownership is decided on
	// CallerID, the account's immutable id, so a user deleted and created
	// again under the same name is a stranger to the old one's projects.
	Caller   string `json:"caller,omitempty"`
	CallerID string `json:"caller_id,omitempty"`
	// CallerSince is when the caller's account was created (see Creator).
	CallerSince time.Time `json:"caller_since,omitzero"`
	// Restricted lists hold only what the caller may see: projects the
	// caller created or whose ids are in Visible.
	Restricted bool     `json:"restricted,omitempty"`
	Visible    []string `json:"visible,omitempty"`
}

// Creator is who created a project: the account's id, and its name and
// the project's creation time for projects made before accounts had ids.
type Creator struct {
	ID   string
	Name string
	At   time.Time
}

// Is reports whether the account (name, immutable id, created at since)
// created the project. A project recorded before ids existed belongs to
// the account of that name only if the account already existed then: one
// created later under the same name is someone else.
func (c Creator) Is(name, id string, since time.Time) bool {
	if c.ID != "" || id == "" {
		return c.ID != "" && c.ID == id
	}
	return c.Name != "" && c.Name == name && !since.IsZero() && !since.After(c.At)
}

// Sees reports whether a restricted caller may see a project.
func (r Request) Sees(projectID string, creator Creator) bool {
	if !r.Restricted || creator.Is(r.Caller, r.CallerID, r.CallerSince) {
		return true
	}
	for _, id := range r.Visible {
		if id == projectID {
			return true
		}
	}
	return false
}

// Param returns a path parameter, or else a query parameter.
func (r Request) Param(name string) string {
	if v, ok := r.Path[name]; ok {
		return v
	}
	return r.Query[name]
}

// DecodeBody decodes the JSON body into v; a body that is not a JSON
// object of the right shape is a 400 that says so. An empty body leaves v
// as it is.
func (r Request) DecodeBody(v any) error {
	b := bytes.TrimSpace(r.Body)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return Errorf(http.StatusBadRequest, "malformed request body: %v", err)
	}
	return nil
}

// ListParams are the react-admin/json-server list parameters the original
// mlpanel accepted: the window [_start, _end) and one sort key.
type ListParams struct {
	Start int    `json:"start,omitempty"`
	End   int    `json:"end,omitempty"` // 0 means to the end
	Sort  string `json:"sort,omitempty"`
	Order string `json:"order,omitempty"` // ASC or DESC
}

// Desc reports whether the order is descending.
func (p ListParams) Desc() bool { return strings.EqualFold(p.Order, "DESC") }

// Window returns the slice bounds of the page within total items.
func (p ListParams) Window(total int) (lo, hi int) {
	lo, hi = p.Start, total
	if p.End > 0 && p.End < hi {
		hi = p.End
	}
	if lo > total {
		lo = total
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// Page sorts items with less (when a sort key was asked for) and returns
// the requested window with the true total.
func Page[T any](items []T, p ListParams, less func(a, b T) bool) List[T] {
	if less != nil {
		sort.SliceStable(items, func(i, j int) bool {
			if p.Desc() {
				return less(items[j], items[i])
			}
			return less(items[i], items[j])
		})
	}
	lo, hi := p.Window(len(items))
	page := items[lo:hi]
	if page == nil {
		page = []T{}
	}
	return List[T]{Items: page, Total: len(items)}
}
