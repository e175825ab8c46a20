package sink

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/rs/zerolog"
)

const (
	// slotSize is the arena room per queued event: typical events are
	// about 330 bytes, so a queue of n events takes n*slotSize bytes.
	slotSize = 512
	// minArena lets a short queue still carry a large event.
	minArena = 256 << 10
)

// event is one queued write, as framers see it.
type event struct {
	data  []byte
	level zerolog.Level
	at    int64 // unix nanoseconds of the Write, for sinks that stamp events
}

type pushResult int

const (
	pushed      pushResult = iota
	pushedFirst            // the drainer found the queue empty and waits: wake it
	pushedBatch            // a full batch (batchEvents) came since pushedFirst
	queueFull
	queueShut
)

// place is where one queued event lies in the arena, in positions that
// only grow (the arena index is pos % len(arena)).
type place struct {
	start, end uint64
	at         int64
	level      zerolog.Level
}

// ring is a bounded FIFO of events laid end to end in one byte arena, so
// that the drainer hands a run of them to one write(2) from the arena
// itself: one copy per event, the writer's. An event never wraps: one that
// does not fit before the arena's end starts at its beginning.
//
// One writer at a time (wmu) and the single drainer share only the
// positions head and tail: the writer's path takes no lock the drainer
// holds, and the drainer's none the writer holds.
type ring struct {
	// Set up once.
	arena  []byte // outside the Go heap where mmap allows (see newRing)
	mapped bool
	places []place
	lines  bool // end every event with '\n' (sinks that write bytes as queued)

	// The writers' side, on cache lines of its own: the drainer's stores
	// to head did not then slow every push.
	_    [64]byte
	wmu  sync.Mutex // writers; also close, against a writer still copying
	wpos uint64     // where the next event may start
	// What the writer last read of the drainer's side: read again only
	// when the queue looks full.
	seenHead, seenHeadPos uint64
	sinceWake             int           // pushes since the one that found the drainer asleep
	tail                  atomic.Uint64 // events pushed
	shut                  atomic.Bool

	_       [64]byte
	head    atomic.Uint64 // events released; written by the drainer
	headPos atomic.Uint64 // the arena is free from here on (drainer)
	_       [64]byte
	// The drainer waits for a wake-up (sleep): read by every push, written
	// only when the drainer sleeps, so apart from head.
	asleep atomic.Bool
	_      [64]byte
}

// newRing holds up to n events. lines: end every event with a newline, as
// the line framer would, so that queued bytes are the bytes written.
func newRing(n int, lines bool) *ring {
	size := max(n*slotSize, minArena)
	r := &ring{places: make([]place, n), lines: lines}
	// An anonymous mapping outside the Go heap: the queue counts neither
	// against the daemon's soft heap limit (a full 32 MiB queue next to
	// the socket table had the GC running all the time) nor in its RSS
	// until events fill it.
	if b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err == nil {
		r.arena, r.mapped = b, true
	} else {
		r.arena = make([]byte, size)
	}
	return r
}

func (r *ring) push(level zerolog.Level, at int64, p []byte) pushResult {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.shut.Load() {
		return queueShut
	}
	n := uint64(len(p))
	newline := r.lines && (n == 0 || p[n-1] != '\n')
	if newline {
		n++
	}
	size := uint64(len(r.arena))
	tail := r.tail.Load()
	if n > size {
		return queueFull
	}
	pos := r.wpos
	if off := pos % size; off+n > size {
		pos += size - off // to the arena's start: an event never wraps
	}
	if tail-r.seenHead == uint64(len(r.places)) || pos+n-r.seenHeadPos > size {
		r.seenHead, r.seenHeadPos = r.head.Load(), r.headPos.Load()
		if tail-r.seenHead == uint64(len(r.places)) || pos+n-r.seenHeadPos > size {
			return queueFull
		}
	}
	off := pos % size
	copy(r.arena[off:], p)
	if newline {
		r.arena[off+n-1] = '\n'
	}
	r.places[tail%uint64(len(r.places))] = place{start: pos, end: pos + n, at: at, level: level}
	r.wpos = pos + n
	r.tail.Store(tail + 1)
	// After the event is published: a drainer that looked before it is
	// marked asleep by now (sleep), and one that looks after finds it.
	if r.asleep.Load() && r.asleep.Swap(false) {
		r.sinceWake = 1
		return pushedFirst
	}
	// A writer that defers the wake-up (Options.DeferWake) is told when a
	// batch has queued up behind the sleeping drainer.
	if r.sinceWake > 0 {
		if r.sinceWake++; r.sinceWake == batchEvents {
			r.sinceWake = 0
			return pushedBatch
		}
	}
	return pushed
}

// sleep tells the writers that the drainer is going to wait for a wake-up,
// unless an event came in the meantime (then false: drain it instead).
func (r *ring) sleep() bool {
	r.asleep.Store(true)
	if r.len() > 0 && r.asleep.Swap(false) {
		return false
	}
	return true
}

// peek returns how many events are queued; the drainer reads them with at
// and run.
func (r *ring) peek() (head uint64, n int) {
	head = r.head.Load()
	return head, int(r.tail.Load() - head)
}

// at is the event i after head; only the drainer calls it, for events it
// has peeked. data points into the arena until they are released.
func (r *ring) at(head uint64, i int) event {
	p := &r.places[(head+uint64(i))%uint64(len(r.places))]
	return event{data: r.bytes(p.start, p.end), level: p.level, at: p.at}
}

func (r *ring) bytes(start, end uint64) []byte {
	off := start % uint64(len(r.arena))
	return r.arena[off : off+end-start : off+end-start]
}

// run is the longest stretch of the first n events after head that lie
// end to end, up to max bytes (at least one event), and where each ends in
// it (ends[k] counted from its start).
func (r *ring) run(head uint64, n, max int, ends []int) ([]byte, []int) {
	first := &r.places[head%uint64(len(r.places))]
	end := first.end
	ends = append(ends, int(first.end-first.start))
	for i := 1; i < n; i++ {
		p := &r.places[(head+uint64(i))%uint64(len(r.places))]
		// Positions go on across the arena's end, the bytes do not.
		if p.start != end || p.start%uint64(len(r.arena)) == 0 || p.end-first.start > uint64(max) {
			break
		}
		end = p.end
		ends = append(ends, int(end-first.start))
	}
	return r.bytes(first.start, end), ends
}

// release frees the k oldest events.
func (r *ring) release(k int) {
	if k == 0 {
		return
	}
	head := r.head.Load() + uint64(k)
	// Free space first, then the event slots: a writer that sees one
	// without the other only finds less room than there is.
	r.headPos.Store(r.places[(head-1)%uint64(len(r.places))].end)
	r.head.Store(head)
}

// close refuses further pushes and discards what is queued, returning how
// many events were discarded.
func (r *ring) close() int {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.shut.Swap(true) {
		return 0
	}
	head, n := r.peek()
	r.head.Store(head + uint64(n))
	if r.mapped {
		unix.Munmap(r.arena)
	}
	r.arena = nil
	return n
}

func (r *ring) len() int {
	_, n := r.peek()
	return n
}

func (r *ring) capacity() int { return len(r.places) }
