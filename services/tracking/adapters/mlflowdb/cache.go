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

// memo is a bounded map of answers keyed by database state and query
// (the key carries both, so a commit makes every old key unreachable).
// When full it forgets everything, which costs one query per key again.
// The reader keeps two: the true totals of searches, and chooseDriver's
// answers (cross.go).
type memo struct {
	mu  sync.Mutex
	by  map[string]int
	max int
}

func (m *memo) get(key string) (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.by[key]
	return n, ok
}

func (m *memo) put(key string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.by == nil || len(m.by) >= m.max {
		m.by = map[string]int{}
	}
	m.by[key] = n
}
