package sink

import (
	"math/rand/v2"
	"time"
)

// backoff spaces reconnect attempts: the wait doubles after each failure up
// to max, and half of it is random so that many daemons restarted together
// do not hammer a collector in step.
type backoff struct {
	base, max time.Duration
	cur       time.Duration
}

func newBackoff(max time.Duration) backoff {
	base := 100 * time.Millisecond
	if base > max {
		base = max
	}
	return backoff{base: base, max: max}
}

func (b *backoff) next() time.Duration {
	switch {
	case b.cur == 0:
		b.cur = b.base
	case b.cur < b.max:
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

// reset follows a success: the next failure waits only the base time.
func (b *backoff) reset() { b.cur = 0 }
