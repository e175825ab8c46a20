package daemon

import (
	"slices"
	"testing"
	"time"
)

// The loop's jobs run when due, in the order added, each next due one
// period after it ran; an early condition runs a job before its time.
func TestScheduleRunsJobsWhenDue(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var ran []string
	var s schedule
	s.add(t0, 0, 100*time.Millisecond, func() { ran = append(ran, "poll") })
	scan := s.add(t0, 10*time.Second, 10*time.Second, func() { ran = append(ran, "scan") })
	tick := s.add(t0, time.Second, time.Second, func() { ran = append(ran, "tick") })
	pending := false
	scan.early = func(now time.Time) bool { return tick.due(now) && pending }

	step := func(at time.Duration, want ...string) {
		t.Helper()
		ran = nil
		s.runDue(t0.Add(at))
		if !slices.Equal(ran, want) {
			t.Fatalf("at %v: ran %v, want %v", at, ran, want)
		}
	}
	step(50*time.Millisecond, "poll")
	step(100 * time.Millisecond)                // next poll at 150 ms
	step(160*time.Millisecond, "poll")          // then at 260 ms
	step(1001*time.Millisecond, "poll", "tick") // tick first due after 1 s
	pending = true
	step(1500*time.Millisecond, "poll") // tick not due: scan waits
	step(2002*time.Millisecond, "poll", "scan", "tick")
	pending = false
	step(11*time.Second, "poll", "tick") // scan ran at 2 s: next after 12 s
	step(12100*time.Millisecond, "poll", "scan", "tick")
}
