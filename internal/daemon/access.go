package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
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

// ownedBy answers whether a row belongs to a process running as uid, as
// /proc shows it: the owner of /proc/PID is the effective uid, or root for
// a process that made itself undumpable; that is also whose file table
// `ss -p` can read. A pid is reused once its process exits, so a process
// younger than the row cannot be the one the row is about: it is left out.
type ownedBy struct {
	uid  uint32
	now  float64 // CLOCK_BOOTTIME, s: /proc's start times count from boot
	seen map[uint32]procAge
}

// procAge is a process's age in seconds, or -1 if it is not uid's.
type procAge float64

// startSlack covers the 10 ms tick of /proc's start times.
const startSlack = 0.02

func newOwnedBy(uid uint32) *ownedBy {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return &ownedBy{uid: uid, now: float64(ts.Nano()) / 1e9, seen: map[uint32]procAge{}}
}

// owns says whether pid is uid's and at least ageS seconds old.
func (o *ownedBy) owns(pid uint32, ageS float64) bool {
	if pid == 0 {
		return false
	}
	age, done := o.seen[pid]
	if !done {
		age = o.lookup(pid)
		o.seen[pid] = age
	}
	return age >= 0 && float64(age)+startSlack >= ageS
}

func (o *ownedBy) lookup(pid uint32) procAge {
	dir := "/proc/" + strconv.FormatUint(uint64(pid), 10)
	fi, err := os.Stat(dir)
	if err != nil {
		return -1
	}
	if st, _ := fi.Sys().(*syscall.Stat_t); st == nil || st.Uid != o.uid {
		return -1
	}
	start, err := startTicks(dir + "/stat")
	if err != nil {
		return -1
	}
	return procAge(o.now - float64(start)/clockTicks)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times on Linux.
const clockTicks = 100

// startTicks reads field 22 of /proc/PID/stat, the start time since boot.
// The comm before it is in parentheses and may hold spaces and ')'.
func startTicks(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no comm", path)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("%s: %d fields", path, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64) // fields 3.. follow the comm
}

// safeSocketDir refuses a directory for the API socket that another user
// could change: there they could swap the socket for their own (feeding
// root's clients), or for a symlink that the chmod after bind follows.
// Every directory on the way must belong to root or to this process and
// be writable by nobody else, except sticky ones (/tmp) above the last.
func safeSocketDir(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	euid := uint32(os.Geteuid())
	for p := real; ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if st == nil || !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
		if st.Uid != 0 && st.Uid != euid {
			return fmt.Errorf("%s belongs to uid %d: another user could replace the socket; use a directory of root's, such as /run/tcpstated", p, st.Uid)
		}
		others := fi.Mode().Perm()&0o022 != 0
		if others && (p == real || fi.Mode()&os.ModeSticky == 0) {
			return fmt.Errorf("%s is writable by other users (mode %v): they could replace the socket; use a directory only root can write, such as /run/tcpstated", p, fi.Mode().Perm())
		}
		if p == "/" {
			return nil
		}
	}
}
