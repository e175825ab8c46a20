package events

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ring reads the BPF ring buffer in place and gives the space back once
// per batch: the consumer position stored per record moved its cache line
// between the reader and every producer (docs/performance.md).
type ring struct {
	mu sync.Mutex // stop and close come from other goroutines
	// The ring's descriptor, in the Go runtime's poller: a reader blocked
	// in an epoll_wait(2) of its own is a thread in a system call, whose P
	// the runtime's monitor (sysmon) takes back, after which it polls
	// every 20 µs for a while (docs/performance.md).
	file    *os.File
	conn    syscall.RawConn
	stopped bool
	cons    []byte
	prodMap []byte
	// The data pages, mapped once: the kernel maps them twice so that a
	// record never wraps, but every page mapped counts in the daemon's RSS
	// (twice the ring). The few records that wrap are copied out.
	data    []byte
	wrapped []byte
	mask    uint64
	consPos *uint64
	prodPos *uint64
}

const (
	ringHdrSize     = 8
	ringBusyBit     = 1 << 31
	ringDiscardBit  = 1 << 30
	ringReleaseSize = 256 << 10 // give space back at least this often
)

func newRing(m *ebpf.Map) (*ring, error) {
	size := int(m.MaxEntries())
	page := os.Getpagesize()
	if size <= 0 || size&(size-1) != 0 || size%page != 0 {
		return nil, fmt.Errorf("ring buffer size %d: not a power of two multiple of the page size", size)
	}
	fd, err := unix.Dup(m.FD())
	if err != nil {
		return nil, err
	}
	r := &ring{mask: uint64(size - 1)}
	fail := func(err error) (*ring, error) {
		if r.file == nil {
			unix.Close(fd)
		}
		r.close()
		return nil, err
	}
	if r.cons, err = unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail(fmt.Errorf("mapping the ring's consumer page: %w", err))
	}
	if r.prodMap, err = unix.Mmap(fd, int64(page), page+size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return fail(fmt.Errorf("mapping the ring's data: %w", err))
	}
	r.consPos = (*uint64)(unsafe.Pointer(&r.cons[0]))
	r.prodPos = (*uint64)(unsafe.Pointer(&r.prodMap[0]))
	r.data = r.prodMap[page:]
	// Non-blocking, so that os.NewFile puts it in the poller, which
	// watches it edge-triggered: a wait returns when the kernel wakes the
	// reader (past a fill threshold), not whenever a record is queued
	// (level-triggered, every wait returned at once under load and the
	// reader spun through batches of a few records).
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail(err)
	}
	r.file = os.NewFile(uintptr(fd), "ringbuf")
	if r.conn, err = r.file.SyscallConn(); err != nil {
		return fail(err)
	}
	// Not pollable (the poller refused it): every wait would return at
	// once, and the reader would spin.
	if err := r.file.SetReadDeadline(time.Time{}); err != nil {
		return fail(fmt.Errorf("the ring buffer cannot be polled: %w", err))
	}
	return r, nil
}

// errRingBusy: the next record is reserved but not yet committed.
var errRingBusy = errors.New("ring record not committed yet")

// drain hands committed records to fn, in order, at most max of them
// (more: some are left). fn's slice points into the ring and is only valid
// during the call.
func (r *ring) drain(max int, fn func([]byte)) (more bool, err error) {
	cons := atomic.LoadUint64(r.consPos)
	released := cons
	for n := 0; ; n++ {
		if n == max {
			more = true
			break
		}
		prod := atomic.LoadUint64(r.prodPos)
		if cons == prod {
			break
		}
		if prod-cons < ringHdrSize || prod-cons > r.mask+1 {
			err = fmt.Errorf("ring positions out of range (consumer %d, producer %d)", cons, prod)
			break
		}
		off := cons & r.mask
		// The length word is written last by the kernel (xchg): load it
		// atomically before trusting the record behind it.
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[off])))
		if hdr&ringBusyBit != 0 {
			err = errRingBusy
			break
		}
		size := uint64(hdr &^ (ringBusyBit | ringDiscardBit))
		next := cons + ringHdrSize + (size+7)&^7
		if next-cons > r.mask+1 || next > prod {
			err = fmt.Errorf("ring record of %d bytes runs past the producer", size)
			break
		}
		if hdr&ringDiscardBit == 0 {
			fn(r.record((off+ringHdrSize)&r.mask, size))
		}
		cons = next
		if cons-released >= ringReleaseSize {
			atomic.StoreUint64(r.consPos, cons)
			released = cons
		}
	}
	if cons != released {
		atomic.StoreUint64(r.consPos, cons)
	}
	return more, err
}

// record is the size bytes at off, copied out when they wrap.
func (r *ring) record(off, size uint64) []byte {
	if end := off + size; end <= uint64(len(r.data)) {
		return r.data[off:end:end]
	}
	if uint64(cap(r.wrapped)) < size {
		r.wrapped = make([]byte, size)
	}
	b := r.wrapped[:size]
	k := copy(b, r.data[off:])
	copy(b[k:], r.data)
	return b
}

// wait blocks until the kernel signals data, stop is called, or timeout
// passes.
func (r *ring) wait(timeout time.Duration) error {
	r.mu.Lock()
	if r.stopped || r.file == nil {
		r.mu.Unlock()
		return nil
	}
	err := r.file.SetReadDeadline(time.Now().Add(timeout))
	r.mu.Unlock()
	if err != nil {
		return err
	}
	// The first call only asks to wait; the second is after a wake-up,
	// the deadline or stop.
	asked := false
	err = r.conn.Read(func(uintptr) bool {
		done := asked
		asked = true
		return done
	})
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return nil
}

// stop wakes a waiting reader and makes every later wait return at once.
func (r *ring) stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.file == nil {
		return nil
	}
	r.stopped = true
	return r.file.SetReadDeadline(time.Unix(1, 0))
}

// close unmaps the ring: no drain or wait may be running.
func (r *ring) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cons != nil {
		unix.Munmap(r.cons)
		r.cons = nil
	}
	if r.prodMap != nil {
		unix.Munmap(r.prodMap)
		r.prodMap, r.data = nil, nil
	}
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
}
