package sink

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/rs/zerolog"
)

const (
	// slotSize is the room preallocated per queued event: typical events
	// are about 300 bytes, so they are copied without allocating.
	slotSize = 512
	// maxKeptSlot bounds the memory a slot keeps after carrying an unusually
	// large event; bigger buffers go back to the garbage collector.
	maxKeptSlot = 64 << 10
)

// event is one queued write.
type event struct {
	data  []byte
	level zerolog.Level
	at    int64 // unix nanoseconds of the Write, for sinks that stamp events
}

type pushResult int

const (
	pushed      pushResult = iota
	pushedFirst            // the queue was empty: the drainer may be asleep
	pushedBatch            // the queue now holds a full batch (batchEvents)
	queueFull
	queueShut
)

// ring is a bounded FIFO of events in preallocated slots. Producers copy
// into the free slot at the tail under a short lock; the single drainer
// reads the slots it has peeked without the lock, since producers never
// touch slots between head and head+count.
type ring struct {
	mu    sync.Mutex
	slots []event
	home  []byte // one arena holding every slot's preallocated room
	// mapped: home is an anonymous mapping outside the Go heap, so the
	// queue counts neither against the daemon's soft heap limit (a full
	// 32 MiB queue next to the socket table had the GC running all the
	// time) nor in its RSS beyond the deepest the queue has been.
	mapped bool
	head   int
	count  int
	shut   bool
}

func newRing(n int) *ring {
	r := &ring{slots: make([]event, n)}
	if b, err := unix.Mmap(-1, 0, n*slotSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err == nil {
		r.home, r.mapped = b, true
	} else {
		r.home = make([]byte, n*slotSize)
	}
	for i := range r.slots {
		r.slots[i].data = r.homeOf(i)
	}
	return r
}

// homeOf is slot i's room in the arena, capped so that a larger event
// reallocates instead of spilling into the next slot.
func (r *ring) homeOf(i int) []byte {
	return r.home[i*slotSize : i*slotSize : (i+1)*slotSize]
}

func (r *ring) push(level zerolog.Level, at int64, p []byte) pushResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.shut:
		return queueShut
	case r.count == len(r.slots):
		return queueFull
	}
	e := &r.slots[(r.head+r.count)%len(r.slots)]
	e.data = append(e.data[:0], p...)
	e.level, e.at = level, at
	r.count++
	switch r.count {
	case 1:
		return pushedFirst
	case batchEvents:
		return pushedBatch
	}
	return pushed
}

// pushMany queues the events of batch under one lock, as far as there is
// room: the drainer takes the same lock, and one per event contended with
// it at full churn. It says whether the queue was empty before (the
// drainer may be asleep), whether it now holds a full batch for the first
// time, and how many events found it full or shut.
func (r *ring) pushMany(batch []event) (first, full bool, dropped int, shut bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shut {
		return false, false, len(batch), true
	}
	before := r.count
	for i := range batch {
		if r.count == len(r.slots) {
			dropped = len(batch) - i
			break
		}
		e := &r.slots[(r.head+r.count)%len(r.slots)]
		e.data = append(e.data[:0], batch[i].data...)
		e.level, e.at = batch[i].level, batch[i].at
		r.count++
	}
	return before == 0 && r.count > 0, before < batchEvents && r.count >= batchEvents, dropped, false
}

// peek returns the first n queued events as [head, head+n) modulo capacity.
func (r *ring) peek() (head, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.head, r.count
}

// at is the i-th slot counted from head; only the drainer calls it, and
// only for slots it has peeked.
func (r *ring) at(head, i int) *event {
	return &r.slots[(head+i)%len(r.slots)]
}

// release frees the n oldest events.
func (r *ring) release(n int) {
	if n == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 0; i < n; i++ {
		idx := (r.head + i) % len(r.slots)
		if cap(r.slots[idx].data) > maxKeptSlot {
			r.slots[idx].data = r.homeOf(idx)
		}
	}
	r.head = (r.head + n) % len(r.slots)
	r.count -= n
	if r.count == 0 {
		// Start over at the first slot: a queue that keeps up then only
		// ever touches its first few slots, where walking round the
		// ring would make all of the mapping resident within one lap.
		r.head = 0
	}
}

// close refuses further pushes and discards what is queued, returning how
// many events were discarded.
func (r *ring) close() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shut {
		return 0
	}
	r.shut = true
	n := r.count
	r.head, r.count = 0, 0
	for i := range r.slots {
		r.slots[i].data = nil
	}
	if r.mapped {
		unix.Munmap(r.home)
	}
	r.home = nil
	return n
}

func (r *ring) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

func (r *ring) capacity() int { return len(r.slots) }
