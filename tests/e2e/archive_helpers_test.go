package e2e

import (
	"io"

	"github.com/mlpanel/mlpanel/pkg/platform/archive"
)

// testArchive writes archives the way the panel does, for ones whose
// contents the test changes but whose manifest must still vouch for them.
type testArchive struct{ w *archive.Writer }

func newTestArchive(out io.Writer) *testArchive { return &testArchive{w: archive.NewWriter(out)} }

func (a *testArchive) add(name string, b []byte) { _ = a.w.AddBytes(name, b) }
func (a *testArchive) close()                    { _ = a.w.Close() }
