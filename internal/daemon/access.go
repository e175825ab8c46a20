package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// caller is who sent a request. The network listener's callers passed its
// TLS and authentication (or the operator allowed otherwise); the API
// socket's are known by their kernel credentials.
type caller struct {
	uid uint32
	// all: sees every socket and the metrics. Otherwise only the sockets of
	// processes running as uid, what `ss -p` would show that user.
	all bool
}

type callerKey struct{}

// callerOf is the request's caller; one without credentials sees nothing
// beyond its own uid's, which no process has.
func callerOf(r *http.Request) caller {
	c, ok := r.Context().Value(callerKey{}).(caller)
	if !ok {
		return caller{uid: ^uint32(0)}
	}
	return c
}

func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// peerCaller reads a unix connection's credentials as the kernel recorded
// them at connect: root and members of group (-1: none) see everything.
func peerCaller(conn net.Conn, group int) caller {
	nobody := caller{uid: ^uint32(0)}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nobody
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nobody
	}
	var cred *unix.Ucred
	var groups []uint32
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err == nil {
			groups, err = peerGroups(int(fd))
		}
	})
	if err != nil || cred == nil {
		return nobody
	}
	c := caller{uid: cred.Uid, all: cred.Uid == 0}
	if group >= 0 && !c.all {
		c.all = cred.Gid == uint32(group)
		for _, g := range groups {
			c.all = c.all || g == uint32(group)
		}
	}
	return c
}

// peerGroups is SO_PEERGROUPS: the supplementary groups the peer had when
// it connected (a pid read later could belong to another process).
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case e == 0:
			return buf[:n/4], nil
		case e == unix.ERANGE && int(n/4) > len(buf) && n <= 65536*4:
			buf = make([]uint32, n/4)
		default:
			return nil, e
		}
	}
}

// lookupGroup resolves --api-group, a name or a gid. The default name may
// be missing (-1: only root sees everything); a group the user named must
// exist.
func lookupGroup(name string, isDefault bool) (int, error) {
	if name == "" {
		return -1, nil
	}
	if n, err := strconv.ParseUint(name, 10, 31); err == nil {
		return int(n), nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		if isDefault {
			return -1, nil
		}
		return -1, fmt.Errorf("--api-group %q: %w", name, err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("--api-group %q: gid %q", name, g.Gid)
	}
	return n, nil
}

// ownedBy answers whether a process runs as uid, as /proc shows it: the
// owner of /proc/PID is the effective uid, or root for a process that made
// itself undumpable; that is also whose file table `ss -p` can read.
type ownedBy struct {
	uid  uint32
	seen map[uint32]bool
}

func newOwnedBy(uid uint32) *ownedBy { return &ownedBy{uid: uid, seen: map[uint32]bool{}} }

func (o *ownedBy) pid(pid uint32) bool {
	if pid == 0 {
		return false
	}
	if ok, done := o.seen[pid]; done {
		return ok
	}
	ok := false
	if fi, err := os.Stat("/proc/" + strconv.FormatUint(uint64(pid), 10)); err == nil {
		st, _ := fi.Sys().(*syscall.Stat_t)
		ok = st != nil && st.Uid == o.uid
	}
	o.seen[pid] = ok
	return ok
}
