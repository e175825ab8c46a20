// Package netns finds the host's network namespaces and runs code inside
// one. Socket iterators and sock_diag see only the namespace they are
// opened in, while the tracepoint sees all; on a Kubernetes node every pod
// has its own.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// NS is one network namespace and a file that names it.
type NS struct {
	Inode uint64
	Path  string // /proc/PID/ns/net, or a pin such as /run/netns/NAME
}

// PinDirs are where `ip netns` and container runtimes pin namespaces that
// may have no process in them.
var PinDirs = []string{"/run/netns", "/var/run/netns", "/run/docker/netns"}

// Self is the daemon's own network namespace.
func Self() (NS, error) {
	ino, err := linkInode("/proc/self/ns/net")
	if err != nil {
		return NS{}, err
	}
	return NS{Inode: ino, Path: "/proc/self/ns/net"}, nil
}

// Found is what List found.
type Found struct {
	NS []NS // the daemon's own first
	// LeftOut: namespaces past the limit. Hidden: processes whose
	// namespace could not be read (another user's, without
	// CAP_SYS_PTRACE); their namespaces may be missing from NS.
	LeftOut, Hidden int
}

// List finds every network namespace a process is in or that is pinned
// under PinDirs, at most limit of them. Processes come and go during the
// walk: one that has gone is skipped. On an error, what was found so far
// (the daemon's own namespace at least) comes with it.
func List(limit int) (Found, error) {
	var f Found
	self, err := Self()
	if err != nil {
		return f, fmt.Errorf("own network namespace: %w", err)
	}
	seen := map[uint64]bool{self.Inode: true}
	f.NS = append(f.NS, self)
	add := func(ns NS) {
		if seen[ns.Inode] {
			return
		}
		seen[ns.Inode] = true
		if len(f.NS) >= limit {
			f.LeftOut++
			return
		}
		f.NS = append(f.NS, ns)
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return f, err
	}
	for _, p := range procs {
		if _, err := strconv.ParseUint(p.Name(), 10, 32); err != nil {
			continue
		}
		path := "/proc/" + p.Name() + "/ns/net"
		ino, err := linkInode(path)
		switch {
		case err == nil:
			add(NS{Inode: ino, Path: path})
		case errors.Is(err, os.ErrPermission):
			f.Hidden++
		}
	}
	for _, dir := range PinDirs {
		pins, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, pin := range pins {
			path := filepath.Join(dir, pin.Name())
			if ino, err := pinInode(path); err == nil {
				add(NS{Inode: ino, Path: path})
			}
		}
	}
	return f, nil
}

// linkInode reads the inode from a /proc/PID/ns/net link: "net:[4026531840]".
func linkInode(path string) (uint64, error) {
	target, err := os.Readlink(path)
	if err != nil {
		return 0, err
	}
	s, ok := strings.CutPrefix(target, "net:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, fmt.Errorf("%s: not a network namespace: %q", path, target)
	}
	return strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
}

// pinInode checks that path is a namespace pinned by a bind mount, not a
// file someone put there, and returns its inode.
func pinInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, fmt.Errorf("%s: not a namespace file", path)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, err
	}
	if fs.Type != unix.NSFS_MAGIC {
		return 0, fmt.Errorf("%s: not a namespace file", path)
	}
	return st.Ino, nil
}

// ErrGone: the namespace ended (its last process exited) before it was
// entered.
var ErrGone = errors.New("network namespace gone")

// Do runs fn inside ns: in place for the daemon's own namespace, and for
// any other on a fresh OS thread that enters it and is never returned to
// the runtime, so that no goroutine of the daemon ever runs in another
// namespace by accident.
func Do(ns NS, fn func() error) error {
	if self, err := Self(); err == nil && self.Inode == ns.Inode {
		return fn()
	}
	flags := os.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC
	if !strings.HasPrefix(ns.Path, "/proc/") {
		// A pin is a bind mount, never a link: do not follow one that
		// was put in its place.
		flags |= unix.O_NOFOLLOW
	}
	f, err := os.OpenFile(ns.Path, flags, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("%s: %w", ns.Path, ErrGone)
		}
		return err
	}
	defer f.Close()
	// The path may now name another namespace (a pid reused), or no
	// namespace at all: check what was opened.
	var st unix.Stat_t
	var fs unix.Statfs_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
		return err
	}
	if st.Ino != ns.Inode || fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%s: %w", ns.Path, ErrGone)
	}
	return onOtherThread(f, ns.Path, fn)
}

// onOtherThread runs fn on a thread of its own that enters the namespace
// of f and ends with fn. Never on the main thread: the runtime does not end
// that one, it parks it for good, and /proc/self/ns/net (which Self reads)
// is the main thread's, so the daemon would take the other namespace for
// its own.
func onOtherThread(f *os.File, path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// While this goroutine holds the main thread, the next
			// one is given another.
			errc <- onOtherThread(f, path, fn)
			runtime.UnlockOSThread()
			return
		}
		// Locked and never unlocked: the thread ends with the goroutine
		// instead of going back to the scheduler in another namespace.
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
