package mlflowdb

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"

	"github.com/mlpanel/mlpanel/services/tracking/domain"
)

// changeCounter reads SQLite's file change counter (header bytes 24-27),
// which every committed write transaction increments in rollback-journal
// mode, MLflow's default for SQLite. ok is false in WAL mode (header bytes
// 18-19 are 2), where the counter does not move, or when the header
// cannot be read, or the database is no SQLite file (a PostgreSQL key):
// then nothing is cached.
func changeCounter(path string) (uint32, bool) {
	if !filepath.IsAbs(path) {
		return 0, false
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var h [28]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return 0, false
	}
	if h[18] == 2 || h[19] == 2 {
		return 0, false
	}
	return binary.BigEndian.Uint32(h[24:28]), true
}

// timesCache keeps the run counts and times of experiments per database
// while its change counter stays the same: an experiment with 100,000
// runs costs one scan per change of the database, not one per request.
// The counter is read before the query, so a result is never cached under
// an older state than the one it saw.
type timesCache struct {
	mu sync.Mutex
	by map[string]*timesEntry // database path
}

type timesEntry struct {
	counter string                     // the database's state (see Reader.state)
	times   map[string]domain.RunTimes // experiment id; absent = not cached
	known   map[string]bool
}

// lookup returns the cached times of ids and the ids it lacks for the
// database at counter.
func (c *timesCache) lookup(path, counter string, ids []string) (map[string]domain.RunTimes, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]domain.RunTimes, len(ids))
	e := c.by[path]
	if e == nil || e.counter != counter {
		return out, ids
	}
	var missing []string
	for _, id := range ids {
		if !e.known[id] {
			missing = append(missing, id)
		} else if t, ok := e.times[id]; ok {
			out[id] = t
		}
	}
	return out, missing
}

// store records the times of ids (absent from times: no active runs).
func (c *timesCache) store(path, counter string, ids []string, times map[string]domain.RunTimes) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]*timesEntry{}
	}
	e := c.by[path]
	if e == nil || e.counter != counter {
		e = &timesEntry{counter: counter, times: map[string]domain.RunTimes{}, known: map[string]bool{}}
		c.by[path] = e
	}
	for _, id := range ids {
		e.known[id] = true
		if t, ok := times[id]; ok {
			e.times[id] = t
		}
	}
}

// totals remembers the true total of a search per database state and
// query, as the run times are: a list a browser polls costs one count per
// change of the database, not one per request. The page itself is an
// index lookup (mlflowschema.Indexes), but the count reads every entry
// that matches, about 10 ms at 100,000 runs where the page reads ten.
type totals struct {
	mu sync.Mutex
	by map[string]int
}

// maxTotals bounds the remembered totals (a query's text each); when
// full they are all forgotten, which costs one count per search again.
const maxTotals = 1024

func (t *totals) get(key string) (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.by[key]
	return n, ok
}

func (t *totals) put(key string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.by == nil || len(t.by) >= maxTotals {
		t.by = map[string]int{}
	}
	t.by[key] = n
}
