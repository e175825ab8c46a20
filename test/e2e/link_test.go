package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A Link joins two test-made network namespaces with a TUN device in each,
// relayed by the test itself, so that packets cross a path with real
// delay and loss: the kernel of these machines has no netem. Each packet
// waits Delay on its way; every DropEvery-th packet carrying data from A
// to B is lost.
type Link struct {
	A, B         *Host
	AddrA, AddrB netip.Addr // 198.18.0.1 in A, 198.18.0.2 in B
	Delay        time.Duration
	DropEvery    int

	mu      sync.Mutex
	dropped int
	files   []*os.File
	done    sync.WaitGroup
}

// NewLink makes the two namespaces and the relay between them; it ends
// with the test.
func NewLink(t *testing.T, delay time.Duration, dropEvery int) *Link {
	t.Helper()
	l := &Link{A: NewNetns(t), B: NewNetns(t), Delay: delay, DropEvery: dropEvery,
		AddrA: netip.MustParseAddr("198.18.0.1"), AddrB: netip.MustParseAddr("198.18.0.2")}
	a, err := openTun(l.A, "tcpsA", l.AddrA, l.AddrB)
	if err != nil {
		t.Fatalf("link: %v", err)
	}
	b, err := openTun(l.B, "tcpsB", l.AddrB, l.AddrA)
	if err != nil {
		a.Close()
		t.Fatalf("link: %v", err)
	}
	l.files = []*os.File{a, b}
	l.done.Add(2)
	go l.relay(a, b, true)
	go l.relay(b, a, false)
	t.Cleanup(func() {
		for _, f := range l.files {
			f.Close()
		}
		l.done.Wait()
	})
	return l
}

// Dropped is how many packets the link has lost on purpose.
func (l *Link) Dropped() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

// openTun creates a point-to-point TUN device inside h's namespace with
// address local and peer remote (the kernel adds the route to it), up.
func openTun(h *Host, name string, local, remote netip.Addr) (*os.File, error) {
	var f *os.File
	err := inNetns(h, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("/dev/net/tun: %w (CONFIG_TUN)", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err == nil {
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
		if err == nil {
			err = configure(name, local, remote)
		}
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("%s in %s: %w", name, h.Name, err)
		}
		// Non-blocking: Go's poller reads it, and Close ends a read.
		f = os.NewFile(uintptr(fd), name)
		return nil
	})
	return f, err
}

// inNetns runs fn on this thread inside h's namespace, and brings the
// thread back. Not internal/netns.Do, whose thread ends with fn: the
// namespace holders die with the thread that started them (Pdeathsig),
// and the runtime may have started one from that thread.
func inNetns(h *Host, fn func() error) error {
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer home.Close()
	there, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", h.pid))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer there.Close()
	if err := unix.Setns(int(there.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	err = fn()
	if back := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); back != nil {
		// Stay locked: the thread ends with this goroutine, not
		// elsewhere in another namespace.
		return errors.Join(err, back)
	}
	runtime.UnlockOSThread()
	return err
}

// configure gives a device its addresses and brings it up.
func configure(name string, local, remote netip.Addr) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	for _, set := range []struct {
		req  uint
		addr netip.Addr
	}{{unix.SIOCSIFADDR, local}, {unix.SIOCSIFDSTADDR, remote}} {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(set.addr.AsSlice()); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(s, set.req, ifr); err != nil {
			return fmt.Errorf("setting %s: %w", set.addr, err)
		}
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr)
}

type delayed struct {
	due time.Time
	pkt []byte
}

// relay moves packets from one device to the other, each Delay after it
// was read; the delay is the same for all, so their order holds.
func (l *Link) relay(from, to *os.File, aToB bool) {
	defer l.done.Done()
	q := make(chan delayed, 1024) // full: the reader waits, as a full link would
	go func() {
		for d := range q {
			time.Sleep(time.Until(d.due))
			to.Write(d.pkt) // fails only once the link is closed
		}
	}()
	defer close(q)
	buf := make([]byte, 65536)
	data := 0
	for {
		n, err := from.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				fmt.Fprintf(os.Stderr, "link: %v\n", err)
			}
			return
		}
		pkt := buf[:n]
		if aToB && l.DropEvery > 0 && tcpPayload(pkt) > 0 {
			if data++; data%l.DropEvery == 0 {
				l.mu.Lock()
				l.dropped++
				l.mu.Unlock()
				continue
			}
		}
		q <- delayed{time.Now().Add(l.Delay), append([]byte(nil), pkt...)}
	}
}

// tcpPayload is the number of data bytes in an IPv4 TCP packet, 0 for
// anything else.
func tcpPayload(p []byte) int {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_TCP {
		return 0
	}
	ihl := int(p[0]&0xf) * 4
	total := int(p[2])<<8 | int(p[3])
	if total > len(p) || len(p) < ihl+20 {
		return 0
	}
	return total - ihl - int(p[ihl+12]>>4)*4
}
