package e2e

import (
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"
)

// kernelAtLeast says whether the running kernel is major.minor or newer.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var uts syscall.Utsname
	if err := syscall.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	var rel []byte
	for _, c := range uts.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	var maj, min int
	if _, err := fmt.Sscanf(string(rel), "%d.%d", &maj, &min); err != nil {
		t.Fatalf("kernel release %q: %v", rel, err)
	}
	return maj > major || maj == major && min >= minor
}

// wantReset is one reset event: which side, whose socket, in which state.
type wantReset struct {
	direction, state string
	pid              int
}

func (w wantReset) String() string {
	return fmt.Sprintf("%s in %s by pid %d", w.direction, w.state, w.pid)
}

// resetsOn keeps the reset events on port, in order.
func resetsOn(evs []Event, port int) []wantReset {
	var out []wantReset
	for _, e := range evs {
		if e.Event == "reset" && (e.Sport == port || e.Dport == port) {
			out = append(out, wantReset{e.Direction, e.State, e.Pid})
		}
	}
	return out
}

// checkResets asserts the reset events on port. Not in order: on loopback
// the receiving side takes the RST inside the sender's transmit, before
// the kernel reports it sent.
func checkResets(t *testing.T, evs []Event, port int, want ...wantReset) {
	t.Helper()
	got := resetsOn(evs, port)
	sort.Slice(got, func(i, j int) bool { return got[i].String() < got[j].String() })
	sort.Slice(want, func(i, j int) bool { return want[i].String() < want[j].String() })
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("port %d: resets\n  %v\nwant\n  %v\n%s", port, got, want, dump(anyOnPort(evs, port)))
	}
}

// An RST is an event on each side, named by the process whose socket sent
// or received it, whatever task the CPU ran: SO_LINGER {1,0} on the server
// is a reset sent in ESTABLISHED by the server's pid and one received by
// the client's; a refused connect is the kernel's RST for no socket (no
// owner) and the client's, received in SYN_SENT.
func TestResetEvents(t *testing.T) {
	onHosts(t, func(t *testing.T, h *Host) {
		d := StartDaemon(t)
		server, client := h.StartPeer(t), h.StartPeer(t)

		p1 := serverAborts(server, client)

		p2 := server.Port("listen tcp4 127.0.0.1:0")
		server.Do("closelistener") // now nobody listens there
		if got := client.Do("connect tcp4 127.0.0.1:%d", p2); got != "refused" {
			t.Fatalf("connect to a closed port: %q", got)
		}

		refused := []wantReset{{"received", "SYN_SENT", client.Pid}}
		if kernelAtLeast(t, 6, 10) {
			// Older kernels run tcp:tcp_send_reset only for a socket's RST.
			refused = append(refused, wantReset{"sent", "CLOSE", 0})
		}
		evs := h.Only(d.WaitFor("resets on both ports", 10*time.Second, func(evs []Event) bool {
			evs = h.Only(evs)
			return len(resetsOn(evs, p1)) >= 2 && len(resetsOn(evs, p2)) >= len(refused) && haveConnections(p1, 2)(evs)
		}))
		checkResets(t, evs, p1,
			wantReset{"sent", "ESTABLISHED", server.Pid},
			wantReset{"received", "ESTABLISHED", client.Pid})
		checkResets(t, evs, p2, refused...)
		checkConnections(t, evs, p1, abortedConnection(server, client)...)
		for dir, want := range map[string]int{"sent": len(refused), "received": 2} {
			if n := metricSum(t, d, fmt.Sprintf(`tcpstated_resets_total{direction=%q}`, dir)); n < want {
				t.Errorf("tcpstated_resets_total{direction=%q} %d, want at least the test's %d", dir, n, want)
			}
		}
	})
}

// Without the resets feature there are no reset events, the loss is said,
// and connection summaries still say which side reset.
func TestWithoutResets(t *testing.T) {
	needKernel(t)
	d := StartDaemon(t, "--disable-feature", "resets")
	checkFeatureReported(t, d, "resets")
	server, client := StartPeer(t), StartPeer(t)
	port := serverAborts(server, client)
	evs := d.WaitFor("both sides summarized", 10*time.Second, haveConnections(port, 2))
	checkResets(t, evs, port)
	checkConnections(t, evs, port, abortedConnection(server, client)...)
}

// serverAborts makes one connection that the server closes with
// SO_LINGER {1,0} (an RST, no FIN), and returns the server's port.
func serverAborts(server, client *Peer) int {
	port := server.Port("listen tcp4 127.0.0.1:0")
	client.Port("connect tcp4 127.0.0.1:%d", port)
	server.Do("accept")
	server.Do("linger0")
	server.Do("close")
	client.Do("close")
	server.Do("closelistener")
	return port
}

// abortedConnection is the two summaries of serverAborts' connection.
func abortedConnection(server, client *Peer) []wantConn {
	return []wantConn{
		{side: "server", pid: server.Pid, role: "server", end: "reset_sent", states: []string{"SYN_RECV", "ESTABLISHED"}},
		{side: "client", pid: client.Pid, role: "client", end: "reset_received", states: []string{"SYN_SENT", "ESTABLISHED"}},
	}
}
