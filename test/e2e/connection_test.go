package e2e

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// wantConn is the summary one side of a connection must get.
type wantConn struct {
	side        string
	pid         int
	role, end   string
	closedFirst string
	timeWait    bool
	states      []string
}

// connections keeps the connection events on port, by cookie.
func connections(evs []Event, port int) map[uint64][]Event {
	m := map[uint64][]Event{}
	for _, e := range evs {
		if e.Event == "connection" && (e.Sport == port || e.Dport == port) {
			m[e.Cookie] = append(m[e.Cookie], e)
		}
	}
	return m
}

// haveConnections is a WaitFor condition: n connections on port summarized.
func haveConnections(port, n int) func([]Event) bool {
	return func(evs []Event) bool { return len(connections(evs, port)) >= n }
}

// checkConnections asserts one summary per socket on port, each as wanted
// (matched by pid, role and end), with durations that add up to its life.
func checkConnections(t *testing.T, evs []Event, port int, want ...wantConn) {
	t.Helper()
	got := connections(evs, port)
	if len(got) != len(want) {
		t.Errorf("port %d: %d connection summaries, want %d:\n%s", port, len(got), len(want), dump(anyOnPort(evs, port)))
	}
	for _, w := range want {
		var found []Event
		for _, sevs := range got {
			if sevs[0].Pid == w.pid && sevs[0].Role == w.role && sevs[0].End == w.end {
				found = append(found, sevs...)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s (pid %d, %s): %d summaries, want 1:\n%s", w.side, w.pid, w.role, len(found), dump(anyOnPort(evs, port)))
			continue
		}
		e := found[0]
		var states []string
		var sum float64
		for _, s := range e.StatesMs {
			states = append(states, s.State)
			sum += s.Ms
		}
		tw := e.TimeWait != nil && *e.TimeWait
		if e.End != w.end || e.ClosedFirst != w.closedFirst || e.TimeWait == nil || tw != w.timeWait ||
			!slices.Equal(states, w.states) || e.LifeLB {
			t.Errorf("%s: end %q closed_first %q time_wait %v states %v lower bound %v; want %q %q %v %v false\n%s",
				w.side, e.End, e.ClosedFirst, tw, states, e.LifeLB, w.end, w.closedFirst, w.timeWait, w.states, dump(anyOnPort(evs, port)))
		}
		if math.Abs(sum-e.LifeMs) > 0.01 {
			t.Errorf("%s: states add up to %.6f ms, life_ms is %.6f", w.side, sum, e.LifeMs)
		}
		handshake := len(w.states) > 1 && (w.states[0] == "SYN_SENT" || w.states[0] == "SYN_RECV")
		if handshake != (e.HandshakeMs != nil) || handshake && *e.HandshakeMs != e.StatesMs[0].Ms {
			t.Errorf("%s: handshake_ms %v, want the %s time (%v)", w.side, e.HandshakeMs, w.states[0], e.StatesMs)
		}
	}
}

// anyOnPort keeps every event of sockets with port at either end.
func anyOnPort(evs []Event, port int) []Event {
	var out []Event
	for _, e := range evs {
		if e.Sport == port || e.Dport == port {
			out = append(out, e)
		}
	}
	return out
}

// closedByClient makes one connection that the client closes first, and
// returns the server's port.
func closedByClient(server, client *Peer) int {
	port := server.Port("listen tcp4 127.0.0.1:0")
	oneConnection(server, client, "tcp4", port)
	server.Do("closelistener")
	return port
}

// One summary per connection, with how it ended, for the four ends a
// loopback connection can have without a timer: each side closing first,
// SO_LINGER {1,0}, and a refused connect.
func TestConnectionSummaries(t *testing.T) {
	onHosts(t, func(t *testing.T, h *Host) {
		d := StartDaemon(t)
		server, client := h.StartPeer(t), h.StartPeer(t)

		// The client closes first: it holds the TIME_WAIT.
		p1 := closedByClient(server, client)

		// The server closes first.
		p2 := server.Port("listen tcp4 127.0.0.1:0")
		client.Port("connect tcp4 127.0.0.1:%d", p2)
		server.Do("accept")
		server.Do("close")
		client.Do("readeof")
		client.Do("close")
		server.Do("closelistener")

		// SO_LINGER {1,0}: the client's close sends an RST.
		p3 := server.Port("listen tcp4 127.0.0.1:0")
		client.Port("connect tcp4 127.0.0.1:%d", p3)
		server.Do("accept")
		client.Do("linger0")
		client.Do("close")
		server.Do("closelistener")

		// Refused: nobody listens on the port any more.
		if got := client.Do("connect tcp4 127.0.0.1:%d", p3); got != "refused" {
			t.Fatalf("connect to a closed port: %q, want refused", got)
		}

		evs := h.Only(d.WaitFor("four connections summarized", 10*time.Second, func(evs []Event) bool {
			return haveConnections(p1, 2)(evs) && haveConnections(p2, 2)(evs) && haveConnections(p3, 3)(evs)
		}))
		checkConnections(t, evs, p1,
			wantConn{"client", client.Pid, "client", "normal", "local", true, []string{"SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2"}},
			wantConn{"server", server.Pid, "server", "normal", "peer", false, []string{"SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK"}})
		checkConnections(t, evs, p2,
			wantConn{"client", client.Pid, "client", "normal", "peer", false, []string{"SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK"}},
			wantConn{"server", server.Pid, "server", "normal", "local", true, []string{"SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2"}})
		checkConnections(t, evs, p3,
			wantConn{"client (linger 0)", client.Pid, "client", "reset_sent", "", false, []string{"SYN_SENT", "ESTABLISHED"}},
			wantConn{"server (linger 0)", server.Pid, "server", "reset_received", "", false, []string{"SYN_RECV", "ESTABLISHED"}},
			wantConn{"refused", client.Pid, "client", "refused", "", false, []string{"SYN_SENT"}})
	})
}

// A SYN nobody answers: the connect times out in SYN_SENT. The listener's
// accept queue (backlog 0) is full, so the kernel drops the SYN; the
// test's namespace retries it once (tcp_syn_retries=1: 1 s + 2 s).
func TestConnectionTimesOutInSynSent(t *testing.T) {
	h := NewNetns(t)
	if out, err := h.Command("sh", "-c", "echo 1 >/proc/sys/net/ipv4/tcp_syn_retries").CombinedOutput(); err != nil {
		t.Fatalf("tcp_syn_retries in the test's namespace: %v %s", err, out)
	}
	d := StartDaemon(t)
	server, filler, client := h.StartPeer(t), h.StartPeer(t), h.StartPeer(t)
	port := server.Port("listenfull")
	filler.Port("connect tcp4 127.0.0.1:%d", port)
	start := time.Now()
	if got := client.Do("connect tcp4 127.0.0.1:%d", port); got != "timedout" {
		t.Fatalf("connect to a full accept queue: %q after %v, want timedout", got, time.Since(start))
	}
	evs := h.Only(d.WaitFor("the timed-out connect summarized", 10*time.Second, func(evs []Event) bool {
		for _, sevs := range connections(evs, port) {
			if sevs[0].Pid == client.Pid {
				return true
			}
		}
		return false
	}))
	for _, sevs := range connections(evs, port) {
		e := sevs[0]
		if e.Pid != client.Pid {
			continue
		}
		if e.End != "timed_out" || e.Role != "client" || len(e.StatesMs) != 1 || e.StatesMs[0].State != "SYN_SENT" ||
			e.StatesMs[0].Ms < 2900 || e.StatesMs[0].Ms > 4000 || e.HandshakeMs != nil {
			t.Errorf("timed-out connect: end %q role %q states %v handshake %v; want timed_out, client, SYN_SENT for about 3 s, none\n%s",
				e.End, e.Role, e.StatesMs, e.HandshakeMs, dump(anyOnPort(evs, port)))
		}
	}
}

// --events chooses what is streamed: with connections alone, one summary
// per connection and no transitions.
func TestEventsSelectsConnections(t *testing.T) {
	d := StartDaemon(t, "--events", "connections")
	port := closedByClient(StartPeer(t), StartPeer(t))
	evs := d.WaitFor("both sides summarized", 10*time.Second, haveConnections(port, 2))
	for _, e := range evs {
		if e.Event != "connection" {
			t.Errorf("--events connections streamed a %s event: %s", e.Event, e)
		}
	}
}

// Bad --events values are usage errors that say what is accepted.
func TestEventsFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--events", "resets,bogus"}, `unknown event class "bogus" (one of transitions, connections, findings, resets, all)`},
		{[]string{"--events", ""}, `unknown event class ""`},
		{[]string{"--events", "connections", "--state", "TIME_WAIT"}, "cannot be combined with --state"},
	} {
		_, errOut, code := run(t, append([]string{"run"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("run %v: exit %d, stderr %q; want exit 2 saying %q", c.args, code, errOut, c.want)
		}
	}
}

// The peer never sends its FIN: the client's orphaned FIN_WAIT2 ends at
// tcp_fin_timeout (1 s in the test's namespace), and that is how its
// connection ended, with the time it waited.
func TestConnectionFinWait2Timeout(t *testing.T) {
	h := NewNetns(t)
	if out, err := h.Command("sh", "-c", "echo 1 >/proc/sys/net/ipv4/tcp_fin_timeout").CombinedOutput(); err != nil {
		t.Fatalf("tcp_fin_timeout in the test's namespace: %v %s", err, out)
	}
	d := StartDaemon(t)
	server, client := h.StartPeer(t), h.StartPeer(t)
	port := server.Port("listen tcp4 127.0.0.1:0")
	client.Port("connect tcp4 127.0.0.1:%d", port)
	server.Do("accept")
	client.Do("close") // the server reads its FIN and never closes
	evs := h.Only(d.WaitFor("the client's FIN_WAIT2 timed out", 10*time.Second, func(evs []Event) bool {
		for _, sevs := range connections(h.Only(evs), port) {
			if sevs[0].Pid == client.Pid {
				return true
			}
		}
		return false
	}))
	server.Do("close")
	e := summaryOf(t, evs, port, client.Pid)
	st := e.StatesMs
	if e.End != "fin_wait2_timeout" || e.ClosedFirst != "local" || e.TimeWait == nil || *e.TimeWait || len(st) != 4 ||
		st[3].State != "FIN_WAIT2" || st[3].Ms < 900 || st[3].Ms > 3000 {
		t.Errorf("want fin_wait2_timeout after about 1 s in FIN_WAIT2, closed first here, no TIME_WAIT:\n%s", dump(anyOnPort(evs, port)))
	}
}
