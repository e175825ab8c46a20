package churn

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// ServerAddr is where every churn and hold server listens.
var ServerAddr = [4]byte{127, 0, 0, 1}

// Listen opens a plain-TCP listening socket on ServerAddr:port. SO_REUSEPORT
// lets several listeners (one per server thread) share a port, each with
// its own accept queue, so accept never serialises on one queue's lock.
// port 0 asks the kernel for a port; the bound port is returned.
func Listen(port int, reusePort, nonblock bool, backlog int) (fd, bound int, err error) {
	flags := unix.SOCK_STREAM | unix.SOCK_CLOEXEC
	if nonblock {
		flags |= unix.SOCK_NONBLOCK
	}
	fd, err = unix.Socket(unix.AF_INET, flags, unix.IPPROTO_TCP)
	if err != nil {
		return -1, 0, fmt.Errorf("listen socket: %w", err)
	}
	fail := func(what string, e error) (int, int, error) {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("%s on port %d: %w", what, port, e)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("SO_REUSEPORT", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: ServerAddr, Port: port}); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port, nil
}

// Dial makes one blocking loopback connection from src (any port) to
// ServerAddr:port and returns its descriptor. IP_BIND_ADDRESS_NO_PORT defers
// the choice of source port to connect(), which only needs the 4-tuple to
// be unique (and may reuse a loopback TIME_WAIT); a plain bind(src, 0) would
// need a port free on src alone and fails sooner under churn.
func Dial(src [4]byte, port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("IP_BIND_ADDRESS_NO_PORT: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", FormatAddr(src, 0), err)
	}
	dst := &unix.SockaddrInet4{Addr: ServerAddr, Port: port}
	err = unix.Connect(fd, dst)
	for err == unix.EINTR {
		// A signal (Go's preemption SIGURG) interrupted the wait for the
		// handshake; connect again resumes the wait, and EISCONN then means
		// the handshake completed meanwhile.
		if err = unix.Connect(fd, dst); err == unix.EISCONN {
			err = nil
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", FormatAddr(ServerAddr, port), err)
	}
	return fd, nil
}
