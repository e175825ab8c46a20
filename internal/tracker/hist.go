package tracker

import "time"

// Buckets are the upper bounds of the time-in-state distribution: from a
// loopback handshake (tens of µs) to a TIME_WAIT (60 s) and past it.
var Buckets = []time.Duration{
	100 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute,
}

// Durations is a histogram of time spent in one state.
type Durations struct {
	Count uint64
	Total time.Duration
	Max   time.Duration
	// Hist[i] counts durations <= Buckets[i]; the last slot is +Inf.
	Hist [16]uint64
}

// Add records one stay.
func (d *Durations) Add(v time.Duration) {
	d.Count++
	d.Total += v
	if v > d.Max {
		d.Max = v
	}
	i := 0
	for i < len(Buckets) && v > Buckets[i] {
		i++
	}
	d.Hist[i]++
}

// Mean is Total/Count, or 0.
func (d *Durations) Mean() time.Duration {
	if d.Count == 0 {
		return 0
	}
	return d.Total / time.Duration(d.Count)
}
