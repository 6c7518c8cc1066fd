package mlflowdb

import (
	"context"
	"fmt"
)

// samples is how many rows of a filter's table chooseDriver looks at.
const samples = 64

// scanShare is the share of a table's rows, in samples, from which
// reading the whole table in storage order beats its (key, run_uuid)
// index for a value comparison. The index gives run ids only: the value
// costs one random lookup of the table row per entry. Measured at
// 100,000 runs (latest_metrics of 200,000 rows, half of them the key):
// the index path took 320 ms, the whole table 44 ms, about 14x less per
// row; so the scan wins from about 1/14 of the rows on, and 1/8 leaves a
// margin for tables whose rows are scattered.
const scanShare = samples / 8

// sampleSQL counts, among samples rows spread evenly over a table's
// rowids, those of one key: a few dozen index lookups, no scan.
const sampleSQL = `WITH RECURSIVE b(lo, hi) AS (SELECT min(rowid), max(rowid) FROM %[1]s),
 s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < %[2]d)
 SELECT COUNT(*) FROM s, b WHERE (SELECT t.key FROM %[1]s t WHERE t.rowid >= b.lo + (b.hi - b.lo) * s.i / %[2]d ORDER BY t.rowid LIMIT 1) = ?`

// chooseDriver returns the value comparison whose table SQLite should
// read first, or -1 to leave the plan to SQLite. MLflow's databases have
// no statistics (nobody runs ANALYZE on them, and this reader may not
// write), so SQLite always starts from the (key, run_uuid) index of the
// first comparison: at 100,000 runs that is 100,000 random row lookups
// for `metrics.accuracy > 0.9`. When the key fills a good share of its
// table, one sequential read of the table is several times cheaper; a
// sample of its rows says whether it does.
func chooseDriver(ctx context.Context, db *conn, filters []clause) (int, error) {
	if db.planned {
		return -1, nil
	}
	for i, c := range filters {
		if !joinsFilter(c) {
			continue
		}
		var n int
		q := fmt.Sprintf(sampleSQL, filterTables[c.kind], samples-1)
		if err := db.QueryRowContext(ctx, q, c.key).Scan(&n); err != nil {
			return -1, err
		}
		if n >= scanShare {
			return i, nil
		}
	}
	return -1, nil
}
