package sink

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

func queued(r *ring) []string {
	head, n := r.peek()
	var got []string
	for i := 0; i < n; i++ {
		got = append(got, string(r.at(head, i).data))
	}
	return got
}

func TestRingFIFOWrapAndFull(t *testing.T) {
	r := newRing(3, false)
	if !r.sleep() {
		t.Fatal("the drainer may not sleep on an empty queue")
	}
	if got := r.push(zerolog.InfoLevel, 1, []byte("a")); got != pushedFirst {
		t.Fatalf("first push after the drainer slept = %v, want pushedFirst", got)
	}
	if r.sleep() {
		t.Fatal("the drainer may sleep with an event queued")
	}
	r.push(zerolog.WarnLevel, 2, []byte("b"))
	r.push(zerolog.ErrorLevel, 3, []byte("c"))
	if got := r.push(zerolog.InfoLevel, 4, []byte("d")); got != queueFull {
		t.Fatalf("push into a full ring = %v, want queueFull", got)
	}
	head, n := r.peek()
	if n != 3 {
		t.Fatalf("peek n = %d, want 3", n)
	}
	if e := r.at(head, 1); string(e.data) != "b" || e.level != zerolog.WarnLevel || e.at != 2 {
		t.Fatalf("event 1 = %q %v %d", e.data, e.level, e.at)
	}
	r.release(2)
	r.push(zerolog.InfoLevel, 5, []byte("e")) // wraps into place 0
	r.push(zerolog.InfoLevel, 6, []byte("f"))
	if got := fmt.Sprint(queued(r)); got != "[c e f]" {
		t.Fatalf("after wrap = %v, want [c e f]", got)
	}
}

func TestRingCopiesTheCallersBytes(t *testing.T) {
	r := newRing(2, false)
	p := []byte("original")
	r.push(zerolog.InfoLevel, 0, p)
	copy(p, "XXXXXXXX")
	if got := queued(r); got[0] != "original" {
		t.Fatalf("queued event changed with the caller's buffer: %q", got)
	}
}

// Bytes bound the queue as well as events: an event that does not fit
// before the oldest one still queued is refused, one larger than the
// whole arena always.
func TestRingFullOfBytes(t *testing.T) {
	r := newRing(4, false)
	size := len(r.arena)
	big := bytes.Repeat([]byte("x"), size/2)
	if r.push(zerolog.InfoLevel, 0, big) != pushed || r.push(zerolog.InfoLevel, 0, big) != pushed {
		t.Fatal("two halves of the arena refused")
	}
	if got := r.push(zerolog.InfoLevel, 0, []byte("y")); got != queueFull {
		t.Fatalf("push into a full arena = %v, want queueFull", got)
	}
	r.release(1)
	if got := r.push(zerolog.InfoLevel, 0, []byte("y")); got != pushed {
		t.Fatalf("push after a release = %v", got)
	}
	r.release(2)
	if got := r.push(zerolog.InfoLevel, 0, bytes.Repeat([]byte("z"), size+1)); got != queueFull {
		t.Fatalf("an event larger than the arena = %v, want queueFull", got)
	}
}

// An event that would cross the arena's end starts at its beginning, so
// every event is one slice, and a run stops at the jump.
func TestRingEventsNeverWrap(t *testing.T) {
	r := newRing(8, true)
	size := len(r.arena)
	first := bytes.Repeat([]byte("a"), size-100)
	r.push(zerolog.InfoLevel, 0, first)
	r.push(zerolog.InfoLevel, 0, []byte("b\n"))
	r.release(1)
	tail := bytes.Repeat([]byte("c"), 200) // does not fit in the last 98 bytes
	if got := r.push(zerolog.InfoLevel, 0, tail); got != pushed {
		t.Fatalf("push across the end = %v", got)
	}
	r.push(zerolog.InfoLevel, 0, []byte("d"))
	got := queued(r)
	if len(got) != 3 || got[0] != "b\n" || got[1] != string(tail)+"\n" || got[2] != "d\n" {
		t.Fatalf("queued %q", got)
	}
	head, n := r.peek()
	run, ends := r.run(head, n, runBytes, nil)
	if string(run) != "b\n" || fmt.Sprint(ends) != "[2]" {
		t.Fatalf("first run %q %v: want the event before the jump alone", run, ends)
	}
	r.release(1)
	head, n = r.peek()
	run, ends = r.run(head, n, runBytes, nil)
	if string(run) != string(tail)+"\nd\n" || fmt.Sprint(ends) != "[201 203]" {
		t.Fatalf("second run %q %v", run, ends)
	}
	if run, ends = r.run(head, n, 202, nil); len(ends) != 1 || len(run) != 201 {
		t.Fatalf("a run past max: %d bytes, ends %v", len(run), ends)
	}
}

// An event that ends exactly at the arena's end is followed, in
// positions, by one at its start: no run may span the two.
func TestRingRunStopsAtTheArenasEnd(t *testing.T) {
	r := newRing(8, false)
	size := len(r.arena)
	r.push(zerolog.InfoLevel, 0, bytes.Repeat([]byte("a"), size-10))
	r.release(1)
	r.push(zerolog.InfoLevel, 0, []byte("0123456789")) // ends at the end
	r.push(zerolog.InfoLevel, 0, []byte("next"))
	head, n := r.peek()
	if run, ends := r.run(head, n, runBytes, nil); string(run) != "0123456789" || len(ends) != 1 {
		t.Fatalf("run %q %v: want the event before the end alone", run, ends)
	}
	r.release(1)
	head, n = r.peek()
	if run, _ := r.run(head, n, runBytes, nil); string(run) != "next" {
		t.Fatalf("run %q", run)
	}
}

func TestRingCloseRefusesAndCounts(t *testing.T) {
	r := newRing(4, false)
	r.push(zerolog.InfoLevel, 0, []byte("a"))
	r.push(zerolog.InfoLevel, 0, []byte("b"))
	if n := r.close(); n != 2 {
		t.Fatalf("close discarded %d, want 2", n)
	}
	if got := r.push(zerolog.InfoLevel, 0, []byte("c")); got != queueShut {
		t.Fatalf("push after close = %v, want queueShut", got)
	}
}

// A writer and the drainer at once (run with -race): every event comes out
// once, whole and in order, or is counted as refused.
func TestRingWriterAndDrainer(t *testing.T) {
	r := newRing(64, true)
	const total = 50000
	var wg sync.WaitGroup
	wg.Add(1)
	refused := 0
	go func() {
		defer wg.Done()
		for i := 0; i < total; i++ {
			line := strconv.Itoa(i) + " " + string(bytes.Repeat([]byte("p"), i%700))
			if r.push(zerolog.InfoLevel, 0, []byte(line)) == queueFull {
				refused++
			}
		}
	}()
	next, got := 0, 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; ; {
		head, n := r.peek()
		if n == 0 {
			if finished {
				break
			}
			select {
			case <-done:
				finished = true
			default:
			}
			continue
		}
		run, ends := r.run(head, n, 4096, nil)
		start := 0
		for _, end := range ends {
			line := string(run[start:end])
			start = end
			var i int
			if _, err := fmt.Sscanf(line, "%d ", &i); err != nil || i < next || len(line) != len(strconv.Itoa(i))+2+i%700 {
				t.Fatalf("event %q after %d", line[:min(len(line), 20)], next)
			}
			next = i + 1
			got++
		}
		r.release(len(ends))
	}
	if got+refused != total {
		t.Fatalf("%d delivered + %d refused, want %d", got, refused, total)
	}
}
