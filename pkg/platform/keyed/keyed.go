// Package keyed serialises work per key. The owning service of an entity
// takes its key's lock around every write, because FerretDB on SQLite does
// not apply concurrent updates of one document atomically.
package keyed

import "sync"

// Mutex is one mutex per key, created on first use. Keys are entity ids,
// a bounded set, so entries are never dropped.
type Mutex struct {
	mu sync.Mutex
	m  map[string]*sync.Mutex
}

// Lock locks key and returns its unlock.
func (k *Mutex) Lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*sync.Mutex{}
	}
	l, ok := k.m[key]
	if !ok {
		l = &sync.Mutex{}
		k.m[key] = l
	}
	k.mu.Unlock()
	l.Lock()
	return l.Unlock
}
