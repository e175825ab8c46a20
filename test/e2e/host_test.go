package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A Host is where a scenario's processes run: the test's own network
// namespace, or a fresh one the test creates. The daemon stays in its own
// namespace and must see sockets in every one, as on a Kubernetes node.
type Host struct {
	Name  string
	Netns uint64    // inode of the namespace
	pid   int       // a process inside it; 0: the test's own namespace
	hold  *exec.Cmd // keeps a created namespace alive
}

const holderEnv = "TCPSTATED_E2E_NETNS_HOLDER"

// ownHost is the test's own network namespace.
func ownHost(t *testing.T) *Host {
	t.Helper()
	ino, err := netnsOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return &Host{Name: "own netns", Netns: ino}
}

// NewNetns creates a network namespace with only loopback in it, up, held
// by a process of this test binary until the test ends.
func NewNetns(t *testing.T) *Host {
	t.Helper()
	needKernel(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	in, out, err := startPiped(cmd)
	if err != nil {
		t.Fatalf("creating a network namespace: %v", err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	line := make([]byte, 64)
	n, _ := out.Read(line)
	if got := strings.TrimSpace(string(line[:n])); got != "ready" {
		t.Fatalf("network namespace holder: %q", got)
	}
	ino, err := netnsOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if own, _ := netnsOf(os.Getpid()); own == ino {
		t.Fatal("the holder is in the test's own network namespace")
	}
	h := &Host{Name: "test-made netns", Netns: ino, pid: cmd.Process.Pid, hold: cmd}
	hostsMu.Lock()
	hosts[ino] = h
	hostsMu.Unlock()
	t.Cleanup(func() {
		hostsMu.Lock()
		delete(hosts, ino)
		hostsMu.Unlock()
	})
	return h
}

// The namespaces the tests made, by inode, for hostOf.
var (
	hostsMu sync.Mutex
	hosts   = map[uint64]*Host{}
)

// hostOf is the Host of a network namespace the test knows: one it made,
// or its own.
func hostOf(t *testing.T, netns uint64) *Host {
	t.Helper()
	hostsMu.Lock()
	h := hosts[netns]
	hostsMu.Unlock()
	if h != nil {
		return h
	}
	own := ownHost(t)
	if netns != own.Netns {
		t.Fatalf("an event in netns %d, which this test did not make", netns)
	}
	return own
}

// runNetnsHolder brings loopback up in the namespace it was started in,
// says so, and holds the namespace until stdin closes.
func runNetnsHolder() int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		var ifr *unix.Ifreq
		if ifr, err = unix.NewIfreq("lo"); err == nil {
			if err = unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err == nil {
				ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
				err = unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
			}
		}
		unix.Close(fd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netns holder: bringing lo up:", err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// Command runs a program inside the host's namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	if h.pid == 0 {
		return exec.Command(name, args...)
	}
	// nsenter execs the program without forking (no -p), so the pid
	// the test sees is the program's.
	return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(h.pid), "-n", name}, args...)...)
}

// StartPeer starts a peer process inside the host's namespace.
func (h *Host) StartPeer(t *testing.T) *Peer {
	t.Helper()
	p := startPeer(t, h.Command(os.Args[0], "-test.run=^$"))
	// Asked of the peer itself: nsenter has entered and exec'd by then.
	if ino := p.Port("netns"); uint64(ino) != h.Netns {
		t.Fatalf("peer %d in netns %d, want %d", p.Pid, ino, h.Netns)
	}
	return p
}

// Only keeps the events of sockets in this host's namespace.
func (h *Host) Only(evs []Event) []Event {
	var out []Event
	for _, e := range evs {
		if e.Netns == h.Netns {
			out = append(out, e)
		}
	}
	return out
}

func netnsOf(pid int) (uint64, error) {
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "net:["), "]"), 10, 64)
}

// onHosts runs a scenario in the test's own network namespace and in one
// it creates.
func onHosts(t *testing.T, scenario func(t *testing.T, h *Host)) {
	t.Run("own", func(t *testing.T) { scenario(t, ownHost(t)) })
	t.Run("netns", func(t *testing.T) { scenario(t, NewNetns(t)) })
}
