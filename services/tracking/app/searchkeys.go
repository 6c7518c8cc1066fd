package app

import (
	"context"
	"strings"

	mc "github.com/mlpanel/mlpanel/services/tracking/mlflowclient"
)

// SortKey is one part of a run's place in MLflow's order: the presence
// rank of an order_by clause (0 a value, then NaN, then missing), or its
// value, or a tie-break. Values compare as SQLite compares them (NULL,
// then numbers, then text by bytes); Desc reverses the value's order, not
// the rank's. Runs of different projects compare by these keys alone, so
// one project's stream can be merged with another's.
type SortKey struct {
	Null  bool
	IsNum bool
	Num   float64
	Str   string
	Desc  bool
}

// CompareKeys orders two runs' keys (as cmp.Compare does).
func CompareKeys(a, b []SortKey) int {
	for i := range min(len(a), len(b)) {
		if c := compareKey(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func compareKey(a, b SortKey) int {
	c := 0
	switch {
	case a.Null || b.Null:
		c = boolInt(!a.Null) - boolInt(!b.Null)
	case a.IsNum != b.IsNum:
		c = boolInt(!a.IsNum) - boolInt(!b.IsNum)
	case a.IsNum:
		switch {
		case a.Num < b.Num:
			c = -1
		case a.Num > b.Num:
			c = 1
		}
	default:
		c = strings.Compare(a.Str, b.Str)
	}
	if a.Desc {
		return -c
	}
	return c
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// RunKey is a run of one project's ordered stream with its keys.
type RunKey struct {
	RunID string
	Keys  []SortKey
}

// KeyStream yields one project's matching runs in MLflow's order.
type KeyStream interface {
	// Next returns the next run; ok is false at the end.
	Next() (k RunKey, ok bool, err error)
	Close()
}

// CrossRunSearch is one project's part of a search across projects.
type CrossRunSearch struct {
	// ExperimentName selects the active experiments by name, or by a LIKE
	// pattern when it holds '%'; empty means every active experiment.
	ExperimentName string
	// ExperimentID narrows to one experiment (a leaderboard's group);
	// empty means what ExperimentName selects.
	ExperimentID string
	Filter       string
	OrderBy      []string
	View         string // mc.ViewActive, mc.ViewDeleted or mc.ViewAll
}

// ExperimentRef is an active experiment of one project.
type ExperimentRef struct{ ID, Name string }

// CrossReads reads each project's database for searches across
// projects, without waking its server. Every method answers ErrUseREST
// when it cannot answer exactly as MLflow would.
type CrossReads interface {
	// CheckFilter returns MLflow's message for a filter its grammar
	// refuses (the same for every project); nil when it accepts it or
	// only MLflow's server can tell.
	CheckFilter(filter string) error
	// RunKeys streams at most limit matching runs (limit <= 0: all)
	// and, with count, tells the number of all matching runs.
	RunKeys(ctx context.Context, projectPath string, s CrossRunSearch, limit int, count bool) (KeyStream, int, error)
	// RunsByID reads runs as runs/search sends them, in the order of ids
	// (ids not found are left out).
	RunsByID(ctx context.Context, projectPath string, ids []string) (DirectRunPage, error)
	// ActiveExperiments lists the active experiments, by name or LIKE
	// pattern (see CrossRunSearch.ExperimentName).
	ActiveExperiments(ctx context.Context, projectPath, name string) ([]ExperimentRef, error)
	// KeysOf computes a run's keys (as RunKeys would give them) from the
	// run as MLflow's REST API sends it, for the projects searched
	// through MLflow's REST API.
	KeysOf(orderBy []string, run mc.Run) ([]SortKey, error)
}
