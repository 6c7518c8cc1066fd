package proc

import (
	"time"

	"github.com/cenkalti/backoff/v5"
)

// StableAfter is how long a process must run before its crashes are
// forgiven and backoff starts over.
const StableAfter = time.Minute

// Crashes is the restart bookkeeping of one supervised process:
// consecutive crashes and when the next start may happen, with
// exponential backoff from one second to thirty.
type Crashes struct {
	Count     int       // consecutive crashes
	NextStart time.Time // no start before this
	b         *backoff.ExponentialBackOff
}

// Record counts a crash at now and returns the wait before the next start.
func (c *Crashes) Record(now time.Time) time.Duration {
	if c.b == nil {
		c.b = &backoff.ExponentialBackOff{
			InitialInterval:     time.Second,
			RandomizationFactor: 0.1, // restarts of many servers do not stampede
			Multiplier:          2,
			MaxInterval:         30 * time.Second,
		}
		c.b.Reset()
	}
	c.Count++
	wait := c.b.NextBackOff()
	c.NextStart = now.Add(wait)
	return wait
}

// Reset forgets the crashes: after a stable run, or when a user asks for
// a start.
func (c *Crashes) Reset() {
	c.Count, c.NextStart = 0, time.Time{}
	if c.b != nil {
		c.b.Reset()
	}
}

// Ready reports whether a start may happen at now.
func (c *Crashes) Ready(now time.Time) bool { return !now.Before(c.NextStart) }
