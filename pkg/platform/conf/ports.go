package conf

import (
	"fmt"

	"github.com/mlpanel/mlpanel/pkg/platform/proc"
)

// PortRange returns MLPANEL_<name> as a port range ("5000-5099") or def.
func (r *Reader) PortRange(name, def string) proc.Range {
	pr, err := proc.ParseRange(r.String(name, def))
	if err != nil {
		r.Fail(fmt.Errorf("%s%s: %w", Prefix, name, err))
	}
	return pr
}
