package e2e

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A socket the scenario must produce: its exact transitions, in order,
// and the process that owns it on every one of them.
type wantSocket struct {
	role  string // listener, server (accepted) or client
	steps []string
	pid   int
}

// role says which side of the scenario a socket is.
func role(evs []Event, serverPort int) string {
	for _, e := range evs {
		if e.New == "LISTEN" || e.Old == "LISTEN" && e.New == "CLOSE" {
			return "listener"
		}
	}
	for _, e := range evs {
		if e.Sport == serverPort {
			return "server"
		}
	}
	return "client"
}

// checkSockets asserts the exact set of sockets on serverPort.
func checkSockets(t *testing.T, evs []Event, serverPort int, family string, want ...wantSocket) {
	t.Helper()
	got := bySocket(onPort(evs, serverPort))
	if len(got) != len(want) {
		t.Fatalf("want %d sockets on port %d, got %d:\n%s", len(want), serverPort, len(got), dump(onPort(evs, serverPort)))
	}
	seen := map[string]bool{}
	for cookie, sevs := range got {
		r := role(sevs, serverPort)
		if seen[r] {
			t.Fatalf("two %s sockets on port %d:\n%s", r, serverPort, dump(onPort(evs, serverPort)))
		}
		seen[r] = true
		i := slices.IndexFunc(want, func(w wantSocket) bool { return w.role == r })
		if i < 0 {
			t.Fatalf("unexpected %s socket %d:\n%s", r, cookie, dump(sevs))
		}
		w := want[i]
		sevs = withoutEarlyEnd(t, sevs)
		if steps := transitions(sevs); !slices.Equal(steps, w.steps) {
			t.Errorf("%s socket %d: transitions\n  got  %s\n  want %s", r, cookie, strings.Join(steps, " "), strings.Join(w.steps, " "))
		}
		for _, e := range sevs {
			if e.Pid != w.pid {
				t.Errorf("%s socket %d: %s>%s owned by pid %d (%s, owner %s), want %d (on-CPU pid was %d)",
					r, cookie, e.Old, e.New, e.Pid, e.Comm, e.Owner, w.pid, e.CPUPid)
			}
			if e.Family != family {
				t.Errorf("%s socket %d: family %q, want %q", r, cookie, e.Family, family)
			}
		}
	}
}

// earlyEnd says whether e is a TIME_WAIT's early end: the kernel may end
// one on its own at any time (kernelview_test.go), which a scenario that
// ends in TIME_WAIT cannot rule out.
func earlyEnd(e Event) bool {
	return e.Old == "TIME_WAIT" && e.New == "CLOSE" && e.Reason == "ended_early"
}

// withoutEarlyEnd drops a socket's last event when it is a TIME_WAIT's
// early end that the kernel agrees with (ss no longer shows that TIME_WAIT):
// a scenario's exact steps then end at the TIME_WAIT. One the kernel still
// holds stays, and fails the scenario.
func withoutEarlyEnd(t *testing.T, sevs []Event) []Event {
	t.Helper()
	n := len(sevs)
	if n < 2 || !earlyEnd(sevs[n-1]) {
		return sevs
	}
	e := sevs[n-1]
	if hostOf(t, e.Netns).heldTimeWait(t, e.Sport, e.Dport) {
		t.Errorf("the daemon ended a TIME_WAIT the kernel still holds: %s", e)
		return sevs
	}
	t.Logf("the kernel ended a TIME_WAIT early, and the daemon said so: %s", e)
	return sevs[:n-1]
}

// lastSteps is a WaitFor condition: socket sequences ended as given (a
// TIME_WAIT's early end counts as the TIME_WAIT it ended).
func lastSteps(serverPort int, ends ...string) func([]Event) bool {
	return func(evs []Event) bool {
		got := bySocket(onPort(evs, serverPort))
		var lasts []string
		for _, sevs := range got {
			e := sevs[len(sevs)-1]
			if earlyEnd(e) && len(sevs) > 1 {
				e = sevs[len(sevs)-2]
			}
			lasts = append(lasts, e.Old+">"+e.New)
		}
		for _, want := range ends {
			i := slices.Index(lasts, want)
			if i < 0 {
				return false
			}
			lasts = slices.Delete(lasts, i, i+1)
		}
		return true
	}
}

var (
	clientClosesFirst = []string{"CLOSE>SYN_SENT", "SYN_SENT>ESTABLISHED", "ESTABLISHED>FIN_WAIT1", "FIN_WAIT1>FIN_WAIT2", "FIN_WAIT2>TIME_WAIT"}
	passiveClose      = []string{"LISTEN>SYN_RECV", "SYN_RECV>ESTABLISHED", "ESTABLISHED>CLOSE_WAIT", "CLOSE_WAIT>LAST_ACK", "LAST_ACK>CLOSE"}
	listenerSteps     = []string{"CLOSE>LISTEN", "LISTEN>CLOSE"}
)

func loopback(network string) string {
	if network == "tcp6" {
		return "[::1]"
	}
	return "127.0.0.1"
}

// oneConnection makes one connection from client to server's listener on
// port and closes it the usual way: the client first, then the server
// once it has read EOF (client FIN_WAIT2 -> TIME_WAIT, server LAST_ACK).
// oneConnection returns the client's local port.
func oneConnection(server, client *Peer, network string, port int) int {
	local := client.Port("connect %s %s:%d", network, loopback(network), port)
	server.Do("accept")
	client.Do("close")
	server.Do("readeof")
	server.Do("close")
	return local
}

// clientFirst: the client closes, the server reads EOF and closes.
func clientFirst(t *testing.T, h *Host, network, family string) {
	d := StartDaemon(t)
	server, client := h.StartPeer(t), h.StartPeer(t)
	port := server.Port("listen %s %s:0", network, loopback(network))
	oneConnection(server, client, network, port)
	server.Do("closelistener")
	evs := d.WaitFor("client TIME_WAIT, server CLOSE, listener CLOSE", 10*time.Second, func(evs []Event) bool {
		return lastSteps(port, "FIN_WAIT2>TIME_WAIT", "LAST_ACK>CLOSE", "LISTEN>CLOSE")(h.Only(evs))
	})
	checkSockets(t, h.Only(evs), port, family,
		wantSocket{"listener", listenerSteps, server.Pid},
		wantSocket{"server", passiveClose, server.Pid},
		wantSocket{"client", clientClosesFirst, client.Pid},
	)
}

func TestClientClosesFirst(t *testing.T) {
	onHosts(t, func(t *testing.T, h *Host) { clientFirst(t, h, "tcp4", "ipv4") })
}

func TestIPv6Loopback(t *testing.T) { clientFirst(t, ownHost(t), "tcp6", "ipv6") }

func TestServerClosesFirst(t *testing.T) {
	d := StartDaemon(t)
	server, client := StartPeer(t), StartPeer(t)
	port := server.Port("listen tcp4 127.0.0.1:0")
	client.Port("connect tcp4 127.0.0.1:%d", port)
	server.Do("accept")
	server.Do("close")
	client.Do("readeof")
	client.Do("close")
	server.Do("closelistener")
	evs := d.WaitFor("server TIME_WAIT, client CLOSE", 10*time.Second,
		lastSteps(port, "FIN_WAIT2>TIME_WAIT", "LAST_ACK>CLOSE", "LISTEN>CLOSE"))
	checkSockets(t, evs, port, "ipv4",
		wantSocket{"listener", listenerSteps, server.Pid},
		wantSocket{"server", []string{"LISTEN>SYN_RECV", "SYN_RECV>ESTABLISHED", "ESTABLISHED>FIN_WAIT1", "FIN_WAIT1>FIN_WAIT2", "FIN_WAIT2>TIME_WAIT"}, server.Pid},
		wantSocket{"client", []string{"CLOSE>SYN_SENT", "SYN_SENT>ESTABLISHED", "ESTABLISHED>CLOSE_WAIT", "CLOSE_WAIT>LAST_ACK", "LAST_ACK>CLOSE"}, client.Pid},
	)
}

// SO_LINGER {1,0}: close sends RST; both sides go straight to CLOSE, with
// no FIN states and no TIME_WAIT.
func TestAbortiveClose(t *testing.T) {
	d := StartDaemon(t)
	server, client := StartPeer(t), StartPeer(t)
	port := server.Port("listen tcp4 127.0.0.1:0")
	client.Port("connect tcp4 127.0.0.1:%d", port)
	server.Do("accept")
	client.Do("linger0")
	client.Do("close")
	server.Do("closelistener")
	evs := d.WaitFor("both sides CLOSE", 10*time.Second,
		lastSteps(port, "ESTABLISHED>CLOSE", "ESTABLISHED>CLOSE", "LISTEN>CLOSE"))
	checkSockets(t, evs, port, "ipv4",
		wantSocket{"listener", listenerSteps, server.Pid},
		wantSocket{"server", []string{"LISTEN>SYN_RECV", "SYN_RECV>ESTABLISHED", "ESTABLISHED>CLOSE"}, server.Pid},
		wantSocket{"client", []string{"CLOSE>SYN_SENT", "SYN_SENT>ESTABLISHED", "ESTABLISHED>CLOSE"}, client.Pid},
	)
	// Give a TIME_WAIT every chance to show up before saying there is none.
	time.Sleep(300 * time.Millisecond)
	for _, e := range onPort(d.ReadEvents(), port) {
		if strings.Contains(e.Old+e.New, "FIN_WAIT") || strings.Contains(e.Old+e.New, "TIME_WAIT") {
			t.Errorf("abortive close produced %s", e)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	d := StartDaemon(t)
	server, client := StartPeer(t), StartPeer(t)
	// A port that was just free: listen, note it, close it.
	port := server.Port("listen tcp4 127.0.0.1:0")
	server.Do("closelistener")
	if reply := client.Do("connect tcp4 127.0.0.1:%d", port); reply != "refused" {
		t.Fatalf("connect to a closed port: %q, want refused", reply)
	}
	evs := d.WaitFor("client SYN_SENT>CLOSE", 10*time.Second, lastSteps(port, "SYN_SENT>CLOSE", "LISTEN>CLOSE"))
	checkSockets(t, evs, port, "ipv4",
		wantSocket{"listener", listenerSteps, server.Pid},
		wantSocket{"client", []string{"CLOSE>SYN_SENT", "SYN_SENT>CLOSE"}, client.Pid},
	)
}

func TestListenerClosed(t *testing.T) {
	d := StartDaemon(t)
	server := StartPeer(t)
	port := server.Port("listen tcp4 127.0.0.1:0")
	server.Do("closelistener")
	evs := d.WaitFor("LISTEN>CLOSE", 10*time.Second, lastSteps(port, "LISTEN>CLOSE"))
	checkSockets(t, evs, port, "ipv4", wantSocket{"listener", listenerSteps, server.Pid})
	for _, e := range onPort(evs, port) {
		if e.Comm == "" || e.Owner != "listen" {
			t.Errorf("listener event %s: comm %q owner %q, want a comm and owner listen", e, e.Comm, e.Owner)
		}
	}
	if e := onPort(evs, port)[1]; e.DurMs == nil || *e.DurMs <= 0 {
		t.Errorf("LISTEN>CLOSE has no dur_ms: the daemon saw LISTEN begin")
	}
}

// The summary on stderr says nothing was lost.
func TestSummaryReportsNoLoss(t *testing.T) {
	d := StartDaemon(t)
	server, client := StartPeer(t), StartPeer(t)
	port := server.Port("listen tcp4 127.0.0.1:0")
	client.Port("connect tcp4 127.0.0.1:%d", port)
	server.Do("accept")
	d.WaitFor("handshake", 10*time.Second, lastSteps(port, "SYN_SENT>ESTABLISHED", "SYN_RECV>ESTABLISHED"))
	stderr := d.Stop()
	var found bool
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, `"tcpstated stopped"`) {
			found = true
			if !strings.Contains(line, `"lost":0`) || !strings.Contains(line, `"decode_errors":0`) {
				t.Errorf("summary reports loss: %s", line)
			}
			if strings.Contains(line, `"events":0,`) {
				t.Errorf("summary counts no events: %s", line)
			}
		}
	}
	if !found {
		t.Fatalf("no summary on stderr:\n%s", stderr)
	}
}

// Two processes listen on one port with SO_REUSEPORT (as nginx workers
// and Envoy do): the kernel picks one listener per connection, and each
// accepted socket must name the process whose listener it came from, on
// every transition, also those in softirq before accept().
// Kernels since 6.3 say so through the accept feature; older ones (6.1
// here) set the child's cookie only after its LISTEN -> SYN_RECV, so the
// child still carries its listener's then.
//
// With the feature disabled, on a kernel that sets the cookie first (6.18)
// the changes before the close name no owner rather than a wrong one.
func TestReusePortListenersInTwoProcesses(t *testing.T) {
	t.Run("default", func(t *testing.T) { reusePortListeners(t, StartDaemon(t), true) })
	t.Run("accept disabled", func(t *testing.T) {
		d := StartDaemon(t, "--disable-feature", "accept")
		checkFeatureReported(t, d, "accept")
		reusePortListeners(t, d, false)
	})
}

func reusePortListeners(t *testing.T, d *Daemon, named bool) {
	a, b, client := StartPeer(t), StartPeer(t), StartPeer(t)
	port := a.Port("listenreuse tcp4 127.0.0.1:0")
	b.Port("listenreuse tcp4 127.0.0.1:%d", port)
	const n = 16
	client.Port("connect tcp4 127.0.0.1:%d %d", port, n)
	acceptor := map[int]int{} // client port -> pid that accepted
	for _, p := range []*Peer{a, b} {
		reply := p.Do("acceptqueued")
		for _, f := range strings.Split(strings.TrimPrefix(strings.TrimPrefix(reply, "ok"), " "), ",") {
			if f == "" {
				continue
			}
			cp, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("acceptqueued: %q", reply)
			}
			acceptor[cp] = p.Pid
		}
	}
	if len(acceptor) != n {
		t.Fatalf("accepted %d connections of %d", len(acceptor), n)
	}
	perPid := map[int]int{}
	for _, pid := range acceptor {
		perPid[pid]++
	}
	if len(perPid) < 2 {
		t.Logf("the kernel gave every connection to one listener (%v): the scenario shows no choice", perPid)
	}
	client.Do("close")
	evs := d.WaitFor("every accepted socket in CLOSE_WAIT", 10*time.Second, func(evs []Event) bool {
		waiting := 0
		for _, e := range onPort(evs, port) {
			if e.Sport == port && e.New == "CLOSE_WAIT" {
				waiting++
			}
		}
		return waiting == n
	})
	for cookie, sevs := range bySocket(onPort(evs, port)) {
		if role(sevs, port) != "server" {
			continue
		}
		if steps := transitions(sevs); !slices.Equal(steps, passiveClose[:3]) {
			t.Errorf("accepted socket %d: transitions %v, want %v", cookie, steps, passiveClose[:3])
		}
		for _, e := range sevs {
			want := acceptor[e.Dport]
			if !named && e.Pid == 0 && e.Owner == "unknown" {
				continue // the listener is ambiguous: no owner, never a wrong one
			}
			if e.Pid != want {
				t.Errorf("accepted socket %d (client port %d): %s>%s owned by pid %d (%s, owner %s), want %d, whose listener took it (listeners: %d, %d; on-CPU pid %d)",
					cookie, e.Dport, e.Old, e.New, e.Pid, e.Comm, e.Owner, want, a.Pid, b.Pid, e.CPUPid)
			}
		}
	}
}
