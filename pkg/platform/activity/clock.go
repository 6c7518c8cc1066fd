package activity

import (
	"sync"
	"time"
)

// Clock is one entity's idle clock (a project's server, a deployment's
// model server): when it was last used and, while a request to it is in
// flight, a time before which it may not sleep. Reports arrive without the
// entity's lock, hence its own mutex.
type Clock struct {
	mu        sync.Mutex
	last      time.Time // last use, start or wake
	busyUntil time.Time // a request is in flight: no sleep before this
}

// Touch records a use at now (a later use is never moved back).
func (c *Clock) Touch(now time.Time) {
	c.mu.Lock()
	if now.After(c.last) {
		c.last = now
	}
	c.mu.Unlock()
}

// Busy holds off a sleep until until: a request is still in flight, and
// the next activity report will say whether it still is.
func (c *Clock) Busy(until time.Time) {
	c.mu.Lock()
	if until.After(c.busyUntil) {
		c.busyUntil = until
	}
	c.mu.Unlock()
}

// Last is the last use.
func (c *Clock) Last() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Due is when the entity may sleep at the earliest, for timeout.
func (c *Clock) Due(timeout time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.last.Add(timeout)
	if c.busyUntil.After(d) {
		return c.busyUntil
	}
	return d
}

// Reset starts the clock afresh at at, even before the last use: a wake
// begins a new idle period.
func (c *Clock) Reset(at time.Time) {
	c.mu.Lock()
	c.last = at
	c.mu.Unlock()
}
