package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const leakN = 5

// leakyServer: a server accepts leakN connections and never closes them;
// the clients close, so each accepted socket sits in CLOSE_WAIT.
func leakyServer(t *testing.T, h *Host) (server, client *Peer, port int) {
	server, client = h.StartPeer(t), h.StartPeer(t)
	port = server.Port("listen tcp4 127.0.0.1:0")
	client.Port("connect tcp4 127.0.0.1:%d %d", port, leakN)
	server.Do("accept %d", leakN)
	client.Do("close")
	eventually(t, "ss shows the CLOSE_WAIT sockets", 5*time.Second, func() error {
		if n := h.ssCount(t, "close-wait", port); n != leakN {
			return fmt.Errorf("ss counts %d CLOSE_WAIT, want %d", n, leakN)
		}
		return nil
	})
	return server, client, port
}

// checkLeakedSockets: the API lists exactly the leaked sockets, owned by
// the server, each with a real descriptor of the server's.
func checkLeakedSockets(t *testing.T, d *Daemon, h *Host, server *Peer, port int, threshold time.Duration, lowerBound bool) []APISocket {
	t.Helper()
	var socks []APISocket
	eventually(t, "API lists the leaked sockets past the threshold with fds", 10*time.Second, func() error {
		socks = h.OnlySockets(d.Sockets("CLOSE_WAIT", port))
		if len(socks) != leakN {
			return fmt.Errorf("API lists %d CLOSE_WAIT sockets, want %d: %+v", len(socks), leakN, socks)
		}
		for _, s := range socks {
			if s.FD == nil || s.AgeS < threshold.Seconds() || !s.CloseWaitLeak {
				return fmt.Errorf("socket not yet reported: %+v", s)
			}
		}
		return nil
	})
	fds := map[int]bool{}
	for _, s := range socks {
		if s.Pid != server.Pid || s.Sport != port || s.State != "CLOSE_WAIT" || s.AgeLowerBound != lowerBound {
			t.Errorf("socket %+v: want pid %d, sport %d, age_is_lower_bound %v", s, server.Pid, port, lowerBound)
		}
		fd := *s.FD
		if fds[fd] {
			t.Errorf("fd %d listed twice", fd)
		}
		fds[fd] = true
		link, err := os.Readlink(filepath.Join("/proc", fmt.Sprint(server.Pid), "fd", fmt.Sprint(fd)))
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			t.Errorf("fd %d of pid %d is %q (%v), want a socket", fd, server.Pid, link, err)
		}
	}
	if n := h.ssCount(t, "close-wait", port); n != len(socks) {
		t.Errorf("ss counts %d CLOSE_WAIT sockets, the API %d", n, len(socks))
	}
	return socks
}

// leakEvents returns the close_wait_leak events for port.
func leakEvents(evs []Event, kind string, port int) []Event {
	var out []Event
	for _, e := range evs {
		if e.Event == kind && e.Sport == port {
			out = append(out, e)
		}
	}
	return out
}

func checkLeakEvents(t *testing.T, d *Daemon, h *Host, server *Peer, port int, socks []APISocket, threshold time.Duration, lowerBound bool) {
	t.Helper()
	evs := d.WaitFor("one close_wait_leak per socket", 10*time.Second, func(evs []Event) bool {
		return len(leakEvents(h.Only(evs), "close_wait_leak", port)) >= leakN
	})
	leaks := leakEvents(h.Only(evs), "close_wait_leak", port)
	if len(leaks) != leakN {
		t.Fatalf("%d close_wait_leak events, want %d:\n%s", len(leaks), leakN, dump(leaks))
	}
	byCookie := map[uint64]APISocket{}
	for _, s := range socks {
		byCookie[s.Cookie] = s
	}
	for _, e := range leaks {
		s, ok := byCookie[e.Cookie]
		if !ok {
			t.Errorf("leak event for unknown cookie: %s", e)
			continue
		}
		if e.Pid != server.Pid || e.Comm == "" || e.FD == nil || *e.FD != *s.FD || e.AgeS < threshold.Seconds() ||
			e.State != "CLOSE_WAIT" || e.Daddr != "127.0.0.1" || e.Dport != s.Dport || e.AgeLB != lowerBound {
			t.Errorf("leak event %+v (fd %v) does not match socket %+v", e, e.FD, s)
		}
	}
	// Closing them resolves every leak, once.
	server.Do("close")
	evs = d.WaitFor("close_wait_resolved for each", 10*time.Second, func(evs []Event) bool {
		return len(leakEvents(h.Only(evs), "close_wait_resolved", port)) >= leakN
	})
	if n := len(leakEvents(h.Only(evs), "close_wait_resolved", port)); n != leakN {
		t.Errorf("%d close_wait_resolved events, want %d", n, leakN)
	}
	if n := len(h.OnlySockets(d.Sockets("CLOSE_WAIT", port))); n != 0 {
		t.Errorf("API still lists %d CLOSE_WAIT sockets after close", n)
	}
}

func TestCloseWaitLeak(t *testing.T) { onHosts(t, closeWaitLeak) }

func closeWaitLeak(t *testing.T, h *Host) {
	const threshold = time.Second
	d := StartDaemon(t, "--close-wait-threshold", threshold.String())
	server, _, port := leakyServer(t, h)
	socks := checkLeakedSockets(t, d, h, server, port, threshold, false)
	for _, p := range d.Processes() {
		if p.Pid == server.Pid {
			if p.CloseWaitLeaks != leakN || p.Sockets["CLOSE_WAIT"] != leakN {
				t.Errorf("process view %+v: want %d leaking CLOSE_WAIT", p, leakN)
			}
		}
	}
	checkLeakEvents(t, d, h, server, port, socks, threshold, false)
}

// The same leak, created before the daemon starts: found at start-up with
// its owner; its age is a lower bound.
// In a namespace of its own, the start-up snapshot must enter it.
func TestCloseWaitLeakBeforeStart(t *testing.T) { onHosts(t, closeWaitLeakBeforeStart) }

func closeWaitLeakBeforeStart(t *testing.T, h *Host) {
	needKernel(t)
	const threshold = time.Second
	server, _, port := leakyServer(t, h)
	d := StartDaemon(t, "--close-wait-threshold", threshold.String())
	socks := checkLeakedSockets(t, d, h, server, port, threshold, true)
	checkLeakEvents(t, d, h, server, port, socks, threshold, true)
}

// A worker that inherits the listener after listen() and accepts: the
// accepted sockets are the worker's, with its descriptors, in the table
// and in the events that follow.
func TestForkedWorkerOwnsAccepted(t *testing.T) { onHosts(t, forkedWorkerOwnsAccepted) }

func forkedWorkerOwnsAccepted(t *testing.T, h *Host) {
	d := StartDaemon(t)
	server, client := h.StartPeer(t), h.StartPeer(t)
	port := server.Port("listen tcp4 127.0.0.1:0")
	client.Port("connect tcp4 127.0.0.1:%d %d", port, 2)
	workerPid := server.Port("spawnworker 2")
	if workerPid == server.Pid {
		t.Fatal("worker is the server")
	}
	eventually(t, "accepted sockets owned by the worker", 10*time.Second, func() error {
		socks := h.OnlySockets(d.Sockets("ESTABLISHED", port))
		var mine int
		for _, s := range socks {
			if s.Sport != port {
				continue
			}
			if s.Pid != workerPid || s.FD == nil {
				return fmt.Errorf("accepted socket %+v, want worker pid %d with an fd", s, workerPid)
			}
			mine++
		}
		if mine != 2 {
			return fmt.Errorf("%d accepted sockets, want 2", mine)
		}
		return nil
	})
	client.Do("close")
	evs := d.WaitFor("CLOSE_WAIT on both accepted sockets", 10*time.Second, func(evs []Event) bool {
		n := 0
		for _, e := range onPort(h.Only(evs), port) {
			if e.New == "CLOSE_WAIT" {
				n++
			}
		}
		return n == 2
	})
	for _, e := range onPort(h.Only(evs), port) {
		if e.New == "CLOSE_WAIT" && e.Pid != workerPid {
			t.Errorf("%s: owner %d, want the worker %d (listener's owner is %d)", e, e.Pid, workerPid, server.Pid)
		}
	}
	server.Do("stopworker")
	for _, s := range h.OnlySockets(d.Sockets("LISTEN", port)) {
		if s.Pid != server.Pid {
			t.Errorf("listener %+v: want the server %d, which called listen()", s, server.Pid)
		}
	}
}
