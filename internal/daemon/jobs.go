package daemon

import "time"

// job is periodic work of the reader's loop, run between reads of the
// ring buffer: on the reader's goroutine, so it needs no lock of its own.
type job struct {
	every time.Duration
	next  time.Time
	// early, when set, can make a job run before its time.
	early func(now time.Time) bool
	run   func()
}

// schedule is the loop's jobs, run in order.
type schedule []*job

// add puts fn on the schedule, first due after first.
func (s *schedule) add(now time.Time, first, every time.Duration, fn func()) *job {
	j := &job{every: every, next: now.Add(first), run: fn}
	*s = append(*s, j)
	return j
}

// due reports whether j's time has come at now.
func (j *job) due(now time.Time) bool { return now.After(j.next) }

// runDue runs, in order, each job that is due or asks to run early, and
// sets its next time from now.
func (s schedule) runDue(now time.Time) {
	for _, j := range s {
		if j.due(now) || j.early != nil && j.early(now) {
			j.next = now.Add(j.every)
			j.run()
		}
	}
}
