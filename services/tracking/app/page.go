package app

import (
	"github.com/mlpanel/mlpanel/pkg/events"
	"github.com/mlpanel/mlpanel/pkg/platform/errs"
	"github.com/mlpanel/mlpanel/services/tracking/domain"
)

// page sorts items by lp.Sort (def when empty) with the keys of table and
// returns the window of lp with the true total. An unknown key is a 400
// that lists the known ones.
func page[T any](items []T, lp events.ListParams, table map[string]func(a, b T) bool, def, what string) (events.List[T], error) {
	key := lp.Sort
	if key == "" {
		key = def
	}
	less, ok := table[key]
	if !ok {
		return events.List[T]{}, errs.Invalidf("cannot sort %s by %q: use one of %s", what, lp.Sort, domain.SortKeys(table))
	}
	return events.Page(items, lp, less), nil
}
