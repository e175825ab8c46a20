package churn

import (
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// rawServer is one server thread: its own SO_REUSEPORT listener and epoll
// instance. It accepts everything pending, then reads each connection
// until EOF and closes it, so the server always closes second
// (ESTABLISHED -> CLOSE_WAIT -> LAST_ACK -> CLOSE). A connection whose
// FIN has not arrived yet is parked in epoll instead of blocking the
// thread, so one slow client never holds up the accept queue.
type rawServer struct {
	listenFD int
	stop     *atomic.Bool
	count    *counters
	waiting  map[int]struct{} // accepted, FIN not yet seen
	buf      [512]byte
}

// pollTimeoutMs bounds how long a server thread takes to notice stop.
const pollTimeoutMs = 20

func (s *rawServer) run() error {
	// One OS thread per server: blocking in epoll_wait must not take a
	// Go scheduler thread away from anyone else.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(ep)
	s.waiting = make(map[int]struct{})
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(s.listenFD)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, s.listenFD, &ev); err != nil {
		return err
	}
	events := make([]unix.EpollEvent, 256)
	for !s.stop.Load() {
		n, err := unix.EpollWait(ep, events, pollTimeoutMs)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range events[:n] {
			if int(e.Fd) == s.listenFD {
				s.acceptPending(ep)
			} else {
				s.finish(ep, int(e.Fd))
			}
		}
	}
	// Only connections whose client never closed are left; close them so
	// nothing outlives the run.
	for fd := range s.waiting {
		unix.Close(fd)
	}
	return nil
}

// acceptBurst caps one accept round so parked connections get served too.
const acceptBurst = 512

func (s *rawServer) acceptPending(ep int) {
	for range acceptBurst {
		// accept4 with a nil address: the peer address is not needed,
		// and unix.Accept4 would allocate one per connection.
		r, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(s.listenFD), 0, 0,
			unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		if errno == unix.EINTR || errno == unix.ECONNABORTED {
			continue
		}
		if errno != 0 { // EAGAIN: queue empty
			return
		}
		s.count.accepted.Add(1)
		s.finish(ep, int(r))
	}
}

// finish reads fd until EOF and closes it, or parks it in epoll when the
// client's FIN has not arrived yet.
func (s *rawServer) finish(ep, fd int) {
	for {
		n, err := unix.Read(fd, s.buf[:])
		switch {
		case n > 0:
			continue // the client's optional small write
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if _, parked := s.waiting[fd]; !parked {
				ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
				if unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev) == nil {
					s.waiting[fd] = struct{}{}
					return
				}
				s.count.resets.Add(1) // cannot watch it: give up on it
				break
			}
			return
		case err != nil:
			s.count.resets.Add(1) // e.g. ECONNRESET: no clean close to make
		default:
			s.count.closed.Add(1) // EOF: the client closed first
		}
		delete(s.waiting, fd)
		unix.Close(fd) // also removes it from the epoll set
		return
	}
}
