package sink

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestTroubleLogFirstAtOnceThenOncePerIntervalWithCount(t *testing.T) {
	var out lockedBuffer
	now := time.Unix(1000, 0)
	tl := newTroubleLog(zerolog.New(&out), "tcp://collector:5170")
	tl.now = func() time.Time { return now }
	boom := errors.New("connection refused")

	tl.failed("cannot open sink", boom)
	for range 99 {
		now = now.Add(50 * time.Millisecond) // 99 more within 10 s
		tl.failed("cannot open sink", boom)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"count":1`) || !strings.Contains(lines[0], "connection refused") ||
		!strings.Contains(lines[0], `"sink":"tcp://collector:5170"`) {
		t.Fatalf("after 100 failures in 5 s: %q", lines)
	}
	now = now.Add(10 * time.Second)
	tl.failed("cannot open sink", boom)
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"count":100`) {
		t.Fatalf("the second warning should stand for the 99 suppressed failures and this one: %q", lines)
	}
	tl.recovered("sink open again")
	tl.recovered("sink open again") // only once per announced failure
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], `"level":"info"`) {
		t.Fatalf("recovery: %q", lines)
	}
}

func TestTroubleLogZeroLoggerIsSilent(t *testing.T) {
	var o Options
	tl := newTroubleLog(o.Logger, "stdout") // the zero Logger discards
	tl.failed("x", errors.New("y"))
	tl.recovered("z")
}

func TestBackoffDoublesUpToTheCapWithJitter(t *testing.T) {
	b := newBackoff(time.Second)
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		if w > time.Second {
			w = time.Second
		}
		d := b.next()
		if d < w/2 || d > w {
			t.Fatalf("attempt %d waited %v, want within [%v, %v]", i, d, w/2, w)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Fatalf("after reset waited %v", d)
	}
	small := newBackoff(10 * time.Millisecond)
	if d := small.next(); d > 10*time.Millisecond {
		t.Fatalf("a cap below the base was ignored: %v", d)
	}
}
