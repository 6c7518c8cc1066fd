package nomadrt

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/nomad/api"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// MeasuredByNomad marks a Usage read from the Nomad client that runs the
// allocation: RSS is the task's resident anonymous memory as its cgroup
// (or, without cgroups, its processes) counts it, CPU is a rate in
// percent of one core. Nomad measures neither PSS nor CPU seconds: those
// stay 0.
const MeasuredByNomad = "nomad"

// ErrNotRunning says the job has no running allocation to measure.
var ErrNotRunning = errors.New("no running allocation")

// ErrNoStats says the node running the allocation keeps no stats of it:
// a Nomad client collects them only with telemetry
// publish_allocation_metrics = true.
var ErrNoStats = errors.New("the Nomad client keeps no allocation stats: set telemetry { publish_allocation_metrics = true } in the client agents' configuration")

// Usage is what the running allocation of the job name uses now, read
// from the client agent of its node through the API
// (/v1/client/allocation/<id>/stats). A job with no running allocation
// (stopped, pending, its node lost) is ErrNotRunning.
func (r *Runtime) Usage(ctx context.Context, name string) (proc.Usage, error) {
	st, err := r.Observe(ctx, name)
	if err != nil {
		return proc.Usage{}, err
	}
	if st.Phase != Running {
		return proc.Usage{}, fmt.Errorf("measuring Nomad job %s: %w (it is %s)", name, ErrNotRunning, st.Phase)
	}
	s, err := r.c.Allocations().Stats(&api.Allocation{ID: st.Alloc}, r.query(ctx))
	if err != nil {
		return proc.Usage{}, fmt.Errorf("reading the stats of allocation %s of Nomad job %s on node %s: %w", st.Alloc, name, st.Node, err)
	}
	if s.ResourceUsage == nil || len(s.Tasks) == 0 {
		return proc.Usage{}, fmt.Errorf("measuring allocation %s of Nomad job %s on node %s: %w", st.Alloc, name, st.Node, ErrNoStats)
	}
	u := proc.Usage{MeasuredBy: MeasuredByNomad, Processes: 1}
	for _, t := range s.Tasks {
		if t != nil && len(t.Pids) > 0 {
			u.Processes = len(t.Pids)
		}
	}
	if m := s.ResourceUsage.MemoryStats; m != nil {
		u.RSSBytes = int64(m.RSS)
	}
	if c := s.ResourceUsage.CpuStats; c != nil {
		u.CPUPercent = c.Percent
	}
	return u, nil
}
