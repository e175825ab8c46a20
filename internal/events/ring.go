package events

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ring reads the BPF ring buffer where the kernel wrote it and gives the
// space back once per batch. A reader that stores the consumer position
// after every record (cilium/ebpf's and libbpf's do) moves that cache line
// to its CPU 300k times a second, and every bpf_ringbuf_reserve on the
// other CPUs reads it: both sides paid for it.
type ring struct {
	mu      sync.Mutex // stop and close come from other goroutines
	fd      int
	epfd    int
	stopFd  int // eventfd: Stop wakes a waiting reader
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
	r := &ring{fd: fd, epfd: -1, stopFd: -1, mask: uint64(size - 1)}
	fail := func(err error) (*ring, error) {
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
	if r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fail(err)
	}
	if r.stopFd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fail(err)
	}
	// Edge-triggered on the ring: epoll then returns when the kernel wakes
	// the reader (past a fill threshold), not whenever a record is queued.
	// Level-triggered, every wait returned at once under load and the
	// reader spun through batches of a few records.
	for _, w := range []unix.EpollEvent{
		{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)},
		{Events: unix.EPOLLIN, Fd: int32(r.stopFd)},
	} {
		if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, int(w.Fd), &w); err != nil {
			return fail(err)
		}
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
	var evs [2]unix.EpollEvent
	ms := int(timeout / time.Millisecond)
	if timeout > 0 && ms == 0 {
		ms = 1
	}
	if _, err := unix.EpollWait(r.epfd, evs[:], ms); err != nil && !errors.Is(err, unix.EINTR) {
		return err
	}
	return nil
}

func (r *ring) stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopFd < 0 {
		return nil // closed
	}
	var one = [8]byte{1}
	_, err := unix.Write(r.stopFd, one[:])
	return err
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
	for _, fd := range []*int{&r.epfd, &r.stopFd, &r.fd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}
