package app

import (
	"cmp"
	"context"
	"errors"

	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/deployer/domain"
)

// Measured is a server whose runtime can say what it costs now: a local
// process group, a Nomad allocation. A Compute Engine instance is not
// measured by the panel.
type Measured interface {
	// Usage is ErrNoUsage when there is nothing to measure now (the
	// allocation is being replaced, its node keeps no stats).
	Usage(ctx context.Context) (proc.Usage, error)
}

// ErrNoUsage: the server cannot be measured now; its stats are zeros.
var ErrNoUsage = errors.New("the model server cannot be measured now")

// MeasuredByNone: the stats hold no measurement (zeros).
const MeasuredByNone = "none"

// Stats is what a deployment's model server costs now.
type Stats struct {
	ID     string        `json:"id"`
	Status domain.Status `json:"status"`
	// Processes, memory and CPU are of the server now; what they mean
	// depends on MeasuredBy (the projects' stats use the same names).
	Processes  int     `json:"processes"`
	PSSBytes   int64   `json:"pssBytes"`
	RSSBytes   int64   `json:"rssBytes"`
	CPUSeconds float64 `json:"cpuSeconds"`
	CPUPercent float64 `json:"cpuPercent,omitempty"`
	MeasuredBy string  `json:"measuredBy"`
}

// Stats measures the deployment's model server.
func (s *Service) Stats(ctx context.Context, id string) (Stats, error) {
	d, err := s.Get(ctx, id)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{ID: d.ID, Status: d.Status, MeasuredBy: MeasuredByNone}
	m, ok := s.serverOf(d.ID).(Measured)
	if !ok {
		return st, nil
	}
	u, err := m.Usage(ctx)
	switch {
	case errors.Is(err, ErrNoUsage):
		return st, nil
	case err != nil:
		return Stats{}, errs.Unavailablef("measuring the model server of deployment %s: %v", d.ID, err)
	}
	st.Processes, st.PSSBytes, st.RSSBytes, st.CPUSeconds = u.Processes, u.PSSBytes, u.RSSBytes, u.CPUSeconds
	st.CPUPercent, st.MeasuredBy = u.CPUPercent, cmp.Or(u.MeasuredBy, proc.MeasuredByProc)
	return st, nil
}
