package tracker

import (
	"syscall"
	"testing"
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
)

// connections returns the connection summaries reported so far.
func (f *feed) connections() []Connection {
	var out []Connection
	for _, r := range f.reports {
		if r.Kind == ReportConnection {
			out = append(out, *r.Conn)
		}
	}
	return out
}

func (f *feed) emitCopyingConn(r *Report) {
	f.emit(r)
	if r.Conn != nil {
		c := *r.Conn
		f.reports[len(f.reports)-1].Conn = &c
	}
}

func steps(c Connection) []Step { return c.Steps[:c.N] }

// A client that closes first: its summary comes when the orphaned
// FIN_WAIT2 enters TIME_WAIT in its timewait socket, with each state's
// time and the handshake.
func TestConnectionSummary(t *testing.T) {
	f := newFeed(t, Config{Connections: true, TimeWaitFollowed: true})
	ms := func(n int) { f.clk.advance(time.Duration(n) * time.Millisecond) }
	f.state(1, 100, events.Close, events.SynSent, 0)
	ms(3)
	f.state(1, 100, events.SynSent, events.Established, 0)
	ms(100)
	f.state(1, 100, events.Established, events.FinWait1, 0)
	ms(1)
	f.state(1, 100, events.FinWait1, events.FinWait2, 0)
	ms(5)
	if len(f.connections()) != 0 {
		t.Fatal("a summary before the connection ended")
	}
	sw := events.Event{Kind: events.KindTimeWaitSwitch, Mono: f.clk.now(), Cookie: 1, Old: events.FinWait2, New: events.TimeWait}
	f.trk.Apply(&sw, f.emitCopyingConn)
	cs := f.connections()
	if len(cs) != 1 {
		t.Fatalf("%d summaries, want 1", len(cs))
	}
	c := cs[0]
	want := []Step{{events.SynSent, 3 * time.Millisecond}, {events.Established, 100 * time.Millisecond},
		{events.FinWait1, time.Millisecond}, {events.FinWait2, 5 * time.Millisecond}}
	if c.Role != RoleClient || c.End != EndNormal || c.ClosedFirst != ClosedByLocal || !c.TimeWait ||
		c.Life != 109*time.Millisecond || c.LifeLowerBound || !c.HasHandshake || c.Handshake != 3*time.Millisecond {
		t.Errorf("summary %+v", c)
	}
	if got := steps(c); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("steps %v, want %v", got, want)
	}
	// The TIME_WAIT's end is its own event, not a second summary.
	ms(60000)
	end := events.Event{Kind: events.KindTimeWaitEnd, Mono: f.clk.now(), Cookie: 1, Old: events.TimeWait, New: events.Close, Flags: events.FlagExpired}
	f.trk.Apply(&end, f.emitCopyingConn)
	if n := len(f.connections()); n != 1 {
		t.Errorf("%d summaries after the TIME_WAIT ended, want 1", n)
	}
}

// The end comes from the path and from the error the kernel had set.
func TestConnectionEnds(t *testing.T) {
	for _, c := range []struct {
		name string
		path []events.State // after CLOSE -> SYN_SENT
		err  syscall.Errno
		end  string
	}{
		{"refused", nil, syscall.ECONNREFUSED, EndRefused},
		{"SYN_SENT timeout", nil, syscall.ETIMEDOUT, EndTimedOut},
		{"RST received", []events.State{events.Established}, syscall.ECONNRESET, EndResetReceived},
		{"RST received in CLOSE_WAIT", []events.State{events.Established, events.CloseWait}, syscall.EPIPE, EndResetReceived},
		{"linger 0", []events.State{events.Established}, 0, EndResetSent},
		{"peer closed first", []events.State{events.Established, events.CloseWait, events.LastAck}, 0, EndNormal},
		{"keepalive timeout", []events.State{events.Established}, syscall.ETIMEDOUT, EndTimedOut},
	} {
		f := newFeed(t, Config{Connections: true, TimeWaitFollowed: true})
		old := events.SynSent
		f.state(1, 100, events.Close, events.SynSent, 0)
		for _, st := range c.path {
			f.clk.advance(time.Millisecond)
			f.state(1, 100, old, st, 0)
			old = st
		}
		ev := events.Event{Kind: events.KindState, Mono: f.clk.now(), Cookie: 1, Old: old, New: events.Close, Aux: uint64(c.err)}
		f.trk.Apply(&ev, f.emitCopyingConn)
		cs := f.connections()
		if len(cs) != 1 || cs[0].End != c.end || cs[0].N != len(c.path)+1 {
			t.Errorf("%s: summaries %+v, want one ending %s", c.name, cs, c.end)
		}
	}
}

// A socket the snapshot found: its life is a lower bound and its role
// unknown; a listener has no summary; with Connections off, none at all.
func TestConnectionFromSnapshotAndNone(t *testing.T) {
	f := newFeed(t, Config{Connections: true, TimeWaitFollowed: true})
	snap := events.Event{Kind: events.KindSocket, Mono: f.clk.now(), Cookie: 7, Old: events.Established,
		Family: events.IPv4, Saddr: client, Daddr: server, Sport: 40000, Dport: 80}
	f.trk.Apply(&snap, f.emitCopyingConn)
	f.clk.advance(time.Second)
	f.state(7, 0, events.Established, events.CloseWait, 0)
	f.state(7, 0, events.CloseWait, events.LastAck, 0)
	f.state(7, 0, events.LastAck, events.Close, 0)
	f.state(8, 100, events.Close, events.Listen, 0)
	f.state(8, 100, events.Listen, events.Close, 0)
	cs := f.connections()
	if len(cs) != 1 || !cs[0].LifeLowerBound || cs[0].Role != RoleUnknown || cs[0].ClosedFirst != ClosedByPeer ||
		cs[0].Steps[0].State != events.Established || cs[0].Life < time.Second {
		t.Errorf("summaries %+v, want one of the snapshot's socket", cs)
	}

	f = newFeed(t, Config{})
	f.state(1, 100, events.Close, events.SynSent, 0)
	f.state(1, 100, events.SynSent, events.Close, 0)
	if cs := f.connections(); len(cs) != 0 {
		t.Errorf("Connections off: %+v", cs)
	}
}

// Without the timewait feature, FIN_WAIT2 -> CLOSE may be a hand-over to
// TIME_WAIT: the summary does not say it was or was not.
func TestConnectionWithoutTimeWaitFeature(t *testing.T) {
	f := newFeed(t, Config{Connections: true})
	f.state(1, 100, events.Close, events.SynSent, 0)
	f.state(1, 100, events.SynSent, events.Established, 0)
	f.state(1, 100, events.Established, events.FinWait1, 0)
	f.state(1, 100, events.FinWait1, events.FinWait2, 0)
	ev := events.Event{Kind: events.KindState, Mono: f.clk.now(), Cookie: 1, Old: events.FinWait2, New: events.Close}
	f.trk.Apply(&ev, f.emitCopyingConn)
	cs := f.connections()
	if len(cs) != 1 || !cs[0].TimeWaitUnknown || cs[0].TimeWait || cs[0].End != EndNormal {
		t.Errorf("summaries %+v, want one with TIME_WAIT unknown", cs)
	}
}

// The kernel's counters count the SYN and FINs: the summary's bytes are
// the data only, whichever state the last counters were read in.
func TestConnectionBytesFromCounters(t *testing.T) {
	type step struct {
		old, new     events.State
		acked, recvd uint64
		err          syscall.Errno
		kind         events.Kind
	}
	for _, c := range []struct {
		name       string
		path       []step
		sent, recv uint64
	}{
		{"client closes first, orphaned FIN_WAIT2", []step{
			{events.SynSent, events.Established, 1, 0, 0, events.KindState},
			{events.Established, events.FinWait1, 1001, 500, 0, events.KindState},
			{events.FinWait1, events.FinWait2, 1002, 500, 0, events.KindState},
			{events.FinWait2, events.TimeWait, 0, 0, 0, events.KindTimeWaitSwitch},
		}, 1000, 500},
		{"client, the peer closes first", []step{
			{events.SynSent, events.Established, 1, 0, 0, events.KindState},
			{events.Established, events.CloseWait, 1001, 501, 0, events.KindState},
			{events.CloseWait, events.LastAck, 1001, 501, 0, events.KindState},
			{events.LastAck, events.Close, 1002, 501, 0, events.KindState},
		}, 1000, 500},
		{"client reset in LAST_ACK: its FIN never acked", []step{
			{events.SynSent, events.Established, 1, 0, 0, events.KindState},
			{events.Established, events.CloseWait, 1001, 501, 0, events.KindState},
			{events.CloseWait, events.LastAck, 1001, 501, 0, events.KindState},
			{events.LastAck, events.Close, 1001, 501, syscall.ECONNRESET, events.KindState},
		}, 1000, 500},
		{"client, SO_LINGER {1,0}", []step{
			{events.SynSent, events.Established, 1, 0, 0, events.KindState},
			{events.Established, events.Close, 11, 7, 0, events.KindState},
		}, 10, 7},
	} {
		f := newFeed(t, Config{Connections: true, TimeWaitFollowed: true})
		f.state(1, 100, events.Close, events.SynSent, 0)
		for _, st := range c.path {
			f.clk.advance(time.Millisecond)
			ev := events.Event{Kind: st.kind, Mono: f.clk.now(), Cookie: 1, Old: st.old, New: st.new, Aux: uint64(st.err),
				Totals: events.Totals{BytesAcked: st.acked, BytesReceived: st.recvd, SRTTMicros: 250, Retrans: 2}}
			if st.kind == events.KindState {
				ev.Family, ev.Saddr, ev.Daddr, ev.Sport, ev.Dport = events.IPv4, client, server, 40000, 80
			}
			f.trk.Apply(&ev, f.emitCopyingConn)
		}
		cs := f.connections()
		if len(cs) != 1 || !cs[0].HasTotals || cs[0].BytesSent != c.sent || cs[0].BytesReceived != c.recv ||
			cs[0].SRTT != 250*time.Microsecond || cs[0].Retransmits != 2 {
			t.Errorf("%s: summaries %+v, want sent %d received %d", c.name, cs, c.sent, c.recv)
		}
	}
}

// A reset names the socket's owner, not the task on the CPU; an aborted
// socket's RST, which comes after its change to CLOSE, names the owner and
// the state it closed from; an RST for no socket has no owner.
func TestResets(t *testing.T) {
	f := newFeed(t, Config{})
	f.state(1, 100, events.Close, events.SynSent, 0)
	f.state(1, 100, events.SynSent, events.Established, 0)
	rst := func(cookie uint64, st events.State, dir uint64) *Report {
		ev := events.Event{Kind: events.KindReset, Mono: f.clk.now(), Cookie: cookie, Old: st, New: st, Aux: dir,
			CPUPid: 999, Family: events.IPv4, Saddr: client, Daddr: server, Dport: 80}
		n := len(f.reports)
		f.trk.Apply(&ev, f.emit)
		if len(f.reports) != n+1 {
			t.Fatalf("reset of %d: %d reports", cookie, len(f.reports)-n)
		}
		return &f.reports[n]
	}
	if r := rst(1, events.Established, 2); r.Kind != ReportReset || r.Reset != ResetReceived || r.Ev.Pid != 100 ||
		r.State != events.Established || r.Ev.Sport != 40000 {
		t.Errorf("received: %+v %+v", r, r.Ev)
	}
	f.state(1, 100, events.Established, events.Close, 0)
	if r := rst(1, events.Close, 1); r.Reset != ResetSent || r.Ev.Pid != 100 || r.State != events.Established || r.Ev.Sport != 40000 {
		t.Errorf("aborted: %+v %+v", r, r.Ev)
	}
	if r := rst(0, events.Close, 1); r.Reset != ResetSent || r.Ev.Pid != 0 || r.State != events.Close {
		t.Errorf("no socket: %+v %+v", r, r.Ev)
	}
	if st := f.trk.Stats(); st.ResetsSent != 2 || st.ResetsReceived != 1 {
		t.Errorf("stats: %d sent, %d received; want 2 and 1", st.ResetsSent, st.ResetsReceived)
	}
}
