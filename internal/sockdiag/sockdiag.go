// Package sockdiag asks the kernel, through NETLINK_SOCK_DIAG, whether one
// TCP socket still exists and in which state: the check behind a finding
// that a missed transition would make false.
package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a sock_diag socket, bound to the network namespace it was
// opened in.
type Conn struct {
	fd  int
	seq uint32
	buf []byte
}

// Open makes a sock_diag socket in the calling thread's network namespace.
func Open() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	tv := unix.NsecToTimeval(int64(time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Conn{fd: fd, buf: make([]byte, 8192)}, nil
}

// Close releases the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// Socket names one TCP socket: its local and remote ends and its cookie
// (0: any socket on those ends).
type Socket struct {
	Local, Remote netip.AddrPort
	Cookie        uint64
}

const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	reqLen           = 56 // struct inet_diag_req_v2
	nlHdrLen         = 16
	noCookie         = ^uint32(0) // INET_DIAG_NOCOOKIE
)

// State returns the kernel's state of s (TCP_* numbering), or found false
// when no such socket exists: gone, or another one (another cookie) holds
// its ends now.
func (c *Conn) State(s Socket) (state uint8, found bool, err error) {
	family := uint8(unix.AF_INET)
	if s.Local.Addr().Is6() && !s.Local.Addr().Is4In6() {
		family = unix.AF_INET6
	}
	c.seq++
	msg := make([]byte, nlHdrLen+reqLen)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], sockDiagByFamily)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(msg[8:], c.seq)
	req := msg[nlHdrLen:]
	req[0], req[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(req[4:], ^uint32(0)) // every state
	id := req[8:]
	binary.BigEndian.PutUint16(id[0:], s.Local.Port())
	binary.BigEndian.PutUint16(id[2:], s.Remote.Port())
	putAddr(id[4:20], s.Local.Addr(), family)
	putAddr(id[20:36], s.Remote.Addr(), family)
	lo, hi := noCookie, noCookie
	if s.Cookie != 0 {
		lo, hi = uint32(s.Cookie), uint32(s.Cookie>>32)
	}
	ne.PutUint32(id[40:], lo)
	ne.PutUint32(id[44:], hi)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, false, fmt.Errorf("sock_diag request: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, 0)
		if err != nil {
			return 0, false, fmt.Errorf("sock_diag answer: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(c.buf[:n])
		if err != nil {
			return 0, false, fmt.Errorf("sock_diag answer: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != c.seq {
				continue // an answer to an earlier, timed-out request
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return 0, false, errors.New("sock_diag: short error message")
				}
				switch e := unix.Errno(-int32(ne.Uint32(m.Data))); e {
				case 0:
					return 0, false, errors.New("sock_diag: acknowledgement without an answer")
				case unix.ENOENT, unix.ESTALE:
					return 0, false, nil // gone, or another socket's ends now
				default:
					return 0, false, fmt.Errorf("sock_diag: %w", e)
				}
			case sockDiagByFamily:
				if len(m.Data) < 2 {
					return 0, false, errors.New("sock_diag: short answer")
				}
				return m.Data[1], true, nil // struct inet_diag_msg: family, state
			}
		}
	}
}

func putAddr(b []byte, a netip.Addr, family uint8) {
	if family == unix.AF_INET {
		v4 := a.Unmap().As4()
		copy(b, v4[:])
		return
	}
	v6 := a.As16()
	copy(b, v6[:])
}
