package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
	"github.com/mlpanel/mlpanel/services/projects/domain"
)

// Stats is what one project costs and how it is used.
type Stats struct {
	ID     string        `json:"id"`
	Name   string        `json:"name"`
	Status domain.Status `json:"status"`
	// Processes, memory and CPU are of the server's process group now
	// (zero while it does not run).
	Processes  int     `json:"processes"`
	PSSBytes   int64   `json:"pssBytes"`
	RSSBytes   int64   `json:"rssBytes"`
	CPUSeconds float64 `json:"cpuSeconds"`
	// CPUPercent is CPU use now, in percent of one core, where the
	// runtime measures a rate (Nomad) instead of CPU seconds.
	CPUPercent float64 `json:"cpuPercent,omitempty"`
	// MeasuredBy says what took the figures above: "proc" (PSS, RSS and
	// CPU seconds of the local process group), "nomad" (RSS and CPU
	// percent of the allocation, from the Nomad client: no PSS, no CPU
	// seconds), "none" (the runtime does not measure, or the server does
	// not run now).
	MeasuredBy string `json:"measuredBy"`
	// LastRequestAt is the last use the panel saw since the service
	// started (absent if none).
	LastRequestAt *time.Time `json:"lastRequestAt,omitempty"`
	Wakes         int        `json:"wakes"`
	AsleepSeconds float64    `json:"asleepSeconds"`
}

// StatsList is every project's stats and their sums.
type StatsList struct {
	Projects        []Stats `json:"projects"`
	Awake           int     `json:"awake"`
	TotalPSSBytes   int64   `json:"totalPssBytes"`
	TotalRSSBytes   int64   `json:"totalRssBytes"`
	TotalCPUSeconds float64 `json:"totalCpuSeconds"`
	// SharedPSSBytes is the warm MLflow process servers are forked from
	// (Config.SharedPid); it is in TotalPSSBytes too.
	SharedPSSBytes int64 `json:"sharedPssBytes"`
}

// Stats reports one project's cost.
func (s *Service) Stats(ctx context.Context, ref string) (Stats, error) {
	p, err := s.Find(ctx, ref)
	if err != nil {
		return Stats{}, err
	}
	return s.statsOf(ctx, p)
}

// AllStats reports every project's cost, ordered by id.
func (s *Service) AllStats(ctx context.Context) (StatsList, error) {
	all, err := s.store.All(ctx)
	if err != nil {
		return StatsList{}, fmt.Errorf("loading projects for their stats: %w", err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	out := StatsList{Projects: make([]Stats, 0, len(all))}
	for _, p := range all {
		st, err := s.statsOf(ctx, p)
		if err != nil {
			return StatsList{}, err
		}
		if awake(p.Status) {
			out.Awake++
		}
		out.TotalPSSBytes += st.PSSBytes
		out.TotalRSSBytes += st.RSSBytes
		out.TotalCPUSeconds += st.CPUSeconds
		out.Projects = append(out.Projects, st)
	}
	if s.cfg.SharedPid != nil {
		if pid := s.cfg.SharedPid(); pid > 0 {
			u, err := proc.GroupUsage(pid)
			if err != nil {
				return StatsList{}, fmt.Errorf("measuring the warm MLflow process: %w", err)
			}
			out.SharedPSSBytes = u.PSSBytes
			out.TotalPSSBytes += u.PSSBytes
			out.TotalRSSBytes += u.RSSBytes
			out.TotalCPUSeconds += u.CPUSeconds
		}
	}
	return out, nil
}

// MeasuredByNone: the stats hold no measurement (zeros).
const MeasuredByNone = "none"

// awake reports whether a project's server runs or is meant to be
// coming up, which is when it costs anything.
func awake(st domain.Status) bool {
	return st == domain.StatusRunning || st == domain.StatusStarting || st == domain.StatusUnhealthy
}

func (s *Service) statsOf(ctx context.Context, p domain.Project) (Stats, error) {
	st := Stats{ID: p.ID, Name: p.Name, Status: p.Status, MeasuredBy: MeasuredByNone}
	if awake(p.Status) {
		u, err := s.runtime.Usage(ctx, p)
		switch {
		case errors.Is(err, ErrNoUsage): // the runtime cannot say: zeros
		case err != nil:
			return Stats{}, fmt.Errorf("measuring project %s: %w", p.ID, err)
		default:
			st.Processes, st.PSSBytes, st.RSSBytes, st.CPUSeconds = u.Processes, u.PSSBytes, u.RSSBytes, u.CPUSeconds
			st.CPUPercent, st.MeasuredBy = u.CPUPercent, cmp.Or(u.MeasuredBy, proc.MeasuredByProc)
		}
	}
	i := &s.rt.Get(p.ID).idle
	if t := i.Last(); !t.IsZero() {
		st.LastRequestAt = &t
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	st.Wakes = i.wakes
	asleep := i.asleep
	if !i.asleepSince.IsZero() {
		asleep += s.now().Sub(i.asleepSince)
	}
	st.AsleepSeconds = asleep.Seconds()
	return st, nil
}
