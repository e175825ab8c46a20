package sink

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/rs/zerolog"
)

func TestRingFIFOWrapAndFull(t *testing.T) {
	r := newRing(3)
	if got := r.push(zerolog.InfoLevel, 1, []byte("a")); got != pushedFirst {
		t.Fatalf("first push = %v, want pushedFirst", got)
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
		t.Fatalf("slot 1 = %q %v %d", e.data, e.level, e.at)
	}
	r.release(2)
	r.push(zerolog.InfoLevel, 5, []byte("e")) // wraps into slot 0
	r.push(zerolog.InfoLevel, 6, []byte("f"))
	head, n = r.peek()
	var got []string
	for i := 0; i < n; i++ {
		got = append(got, string(r.at(head, i).data))
	}
	if fmt.Sprint(got) != "[c e f]" {
		t.Fatalf("after wrap = %v, want [c e f]", got)
	}
}

func TestRingCopiesTheCallersBytes(t *testing.T) {
	r := newRing(2)
	p := []byte("original")
	r.push(zerolog.InfoLevel, 0, p)
	copy(p, "XXXXXXXX")
	head, _ := r.peek()
	if got := string(r.at(head, 0).data); got != "original" {
		t.Fatalf("queued event changed with the caller's buffer: %q", got)
	}
}

func TestRingLargeEventDoesNotSpillIntoNeighbour(t *testing.T) {
	r := newRing(2)
	big := bytes.Repeat([]byte("x"), slotSize*3)
	r.push(zerolog.InfoLevel, 0, big)
	r.push(zerolog.InfoLevel, 0, []byte("neighbour"))
	head, _ := r.peek()
	if !bytes.Equal(r.at(head, 0).data, big) || string(r.at(head, 1).data) != "neighbour" {
		t.Fatal("a large event overwrote its neighbour's slot")
	}
	huge := bytes.Repeat([]byte("y"), maxKeptSlot+1)
	r.release(2)
	r.push(zerolog.InfoLevel, 0, huge)
	r.release(1)
	idx := 0 // huge went to slot 0 after two releases wrapped head to 0
	if c := cap(r.slots[idx].data); c > maxKeptSlot {
		t.Fatalf("slot kept %d bytes after a huge event, want at most %d", c, maxKeptSlot)
	}
}

func TestRingCloseRefusesAndCounts(t *testing.T) {
	r := newRing(4)
	r.push(zerolog.InfoLevel, 0, []byte("a"))
	r.push(zerolog.InfoLevel, 0, []byte("b"))
	if n := r.close(); n != 2 {
		t.Fatalf("close discarded %d, want 2", n)
	}
	if got := r.push(zerolog.InfoLevel, 0, []byte("c")); got != queueShut {
		t.Fatalf("push after close = %v, want queueShut", got)
	}
}

// A queue that keeps up stays in its first slots, so its mapping is not
// made resident lap by lap (the kernel says which pages are, mincore).
func TestRingThatKeepsUpTouchesOnlyItsFirstPages(t *testing.T) {
	r := newRing(4096)
	if !r.mapped {
		t.Skip("the queue fell back to the Go heap: mmap refused")
	}
	for i := range 20000 {
		r.push(zerolog.InfoLevel, int64(i), []byte("an event of a queue that keeps up"))
		r.push(zerolog.InfoLevel, int64(i), []byte("and a second one"))
		r.release(2)
	}
	resident, pages := residentPages(t, r.home)
	if resident > 1 {
		t.Fatalf("%d of %d pages of the queue resident after 40000 events never more than 2 deep, want 1", resident, pages)
	}
}
