package sockdiag

import (
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpstated/tcpstated/internal/testkit"
)

func cookieOf(t *testing.T, c syscall.Conn) uint64 {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ck uint64
	var gerr error
	raw.Control(func(fd uintptr) { ck, gerr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return ck
}

// ownNetns moves the test's thread into a new network namespace with its
// loopback up: the TIME_WAIT table is per namespace, and the host's may be
// full after a churn (the kernel then skips TIME_WAIT altogether).
func ownNetns(t *testing.T) {
	t.Helper()
	testkit.NeedRoot(t)
	runtime.LockOSThread() // never unlocked: the thread ends with the test
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
}

// A live connection is found in ESTABLISHED, by its cookie; another
// cookie on the same ends is not it; a closed client is in TIME_WAIT, with
// the same cookie, and an end nobody holds is not found.
func TestState(t *testing.T) {
	ownNetns(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := Socket{
		Local:  cl.LocalAddr().(*net.TCPAddr).AddrPort(),
		Remote: cl.RemoteAddr().(*net.TCPAddr).AddrPort(),
		Cookie: cookieOf(t, cl.(*net.TCPConn)),
	}
	check := func(what string, s Socket, wantFound bool, want uint8) {
		t.Helper()
		st, found, err := c.State(s)
		if err != nil || found != wantFound || found && st != want {
			t.Errorf("%s: state %d found %v err %v; want %d found %v", what, st, found, err, want, wantFound)
		}
	}
	check("established", s, true, 1)
	other := s
	other.Cookie++
	check("another cookie", other, false, 0)

	cl.Close() // client first: the client's end goes to TIME_WAIT
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv.Read(make([]byte, 1))
		st, found, err := c.State(s)
		if err == nil && found && st == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TIME_WAIT for the closed client: state %d found %v err %v", st, found, err)
		}
		srv.Close()
		time.Sleep(20 * time.Millisecond)
	}
	nobody := Socket{Local: netip.MustParseAddrPort("127.0.0.1:1"), Remote: netip.MustParseAddrPort("127.0.0.1:2")}
	check("nobody's ends", nobody, false, 0)
}
