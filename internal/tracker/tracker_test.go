package tracker

import (
	"maps"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
)

// fakeClock is CLOCK_MONOTONIC under the test's control.
type fakeClock struct{ ns uint64 }

func (c *fakeClock) now() uint64             { return c.ns }
func (c *fakeClock) advance(d time.Duration) { c.ns += uint64(d) }

func comm(s string) (c events.Comm) { copy(c[:], s); return }

var (
	client = netip.MustParseAddr("10.0.0.1")
	server = netip.MustParseAddr("10.0.0.2")
)

// feed builds records and collects reports.
type feed struct {
	t       *testing.T
	trk     *Tracker
	clk     *fakeClock
	reports []Report
}

func newFeed(t *testing.T, cfg Config) *feed {
	clk := &fakeClock{ns: uint64(time.Hour)}
	return &feed{t: t, trk: New(cfg, clk.now), clk: clk}
}

func (f *feed) emit(r *Report) {
	cp := *r
	ev := *r.Ev
	cp.Ev = &ev
	f.reports = append(f.reports, cp)
}

// state feeds one tracepoint record; since is taken from the clock of the
// previous record of the socket unless zero is wanted.
func (f *feed) state(cookie uint64, pid uint32, old, nw events.State, since uint64) *Report {
	ev := events.Event{Kind: events.KindState, Mono: f.clk.now(), SinceMono: since, Cookie: cookie,
		Pid: pid, Comm: comm("curl"), Owner: events.OwnerConnect, Family: events.IPv4,
		Saddr: client, Daddr: server, Sport: 40000, Dport: 80, Old: old, New: nw}
	n := len(f.reports)
	f.trk.Apply(&ev, f.emit)
	if len(f.reports) == n {
		return nil
	}
	return &f.reports[len(f.reports)-1]
}

func TestLifecycleAndAccounting(t *testing.T) {
	f := newFeed(t, Config{})
	start := f.clk.now()
	f.state(1, 100, events.Close, events.SynSent, 0)
	f.clk.advance(2 * time.Millisecond)
	r := f.state(1, 100, events.SynSent, events.Established, start)
	if !r.HasDur || r.Dur != 2*time.Millisecond || r.Source != SourceTracepoint {
		t.Fatalf("SYN_SENT stay: %+v", r)
	}
	socks, _ := f.trk.Sockets(Query{})
	if len(socks) != 1 || socks[0].State != events.Established || socks[0].Pid != 100 || socks[0].Comm.String() != "curl" {
		t.Fatalf("table: %+v", socks)
	}
	p, _ := f.trk.Processes()
	if len(p) != 1 || p[0].Live[events.Established] != 1 || p[0].Time[events.SynSent].Count != 1 || p[0].Time[events.SynSent].Max != 2*time.Millisecond {
		t.Fatalf("process: %+v", p)
	}
	f.state(1, 100, events.Established, events.Close, f.clk.now())
	if n := f.trk.Stats().Sockets; n != 0 {
		t.Fatalf("%d sockets after CLOSE", n)
	}
	if p, _ := f.trk.Processes(); p[0].Live[events.Established] != 0 {
		t.Fatalf("live count not released: %+v", p[0].Live)
	}
	if tr := f.trk.Transitions(); tr[events.SynSent][events.Established] != 1 {
		t.Fatal("transition not counted")
	}
}

// A timewait socket's records carry no addresses: the table supplies them,
// and the end says why and how long.
func TestTimeWaitFromTable(t *testing.T) {
	for _, tc := range []struct {
		flags  events.Flags
		old    events.State
		reason string
	}{
		{events.FlagExpired, events.TimeWait, ReasonExpired},
		{events.FlagEndedEarly, events.TimeWait, ReasonEndedEarly},
		{events.FlagExpired, events.FinWait2, ReasonFinWait2Timeout},
	} {
		f := newFeed(t, Config{})
		f.state(7, 100, events.FinWait1, events.FinWait2, 0)
		entered := f.clk.now()
		if tc.old == events.TimeWait {
			f.clk.advance(time.Millisecond)
			entered = f.clk.now()
			ev := events.Event{Kind: events.KindTimeWaitSwitch, Mono: entered, SinceMono: entered - uint64(time.Millisecond),
				Cookie: 7, Pid: 100, Family: events.IPv4, Saddr: netip.IPv4Unspecified(), Daddr: netip.IPv4Unspecified(),
				Sport: 40000, Dport: 80, Old: events.FinWait2, New: events.TimeWait, Flags: events.FlagSwitchDerived}
			f.trk.Apply(&ev, f.emit)
			sw := f.reports[len(f.reports)-1]
			if sw.Source != SourceTimeWaitExpiry || sw.Ev.Saddr != client || sw.Dur != time.Millisecond {
				t.Fatalf("switch: %+v %+v", sw, sw.Ev)
			}
		}
		f.clk.advance(60 * time.Second)
		ev := events.Event{Kind: events.KindTimeWaitEnd, Mono: f.clk.now(), SinceMono: entered, Cookie: 7, Pid: 100,
			Family: events.IPv4, Saddr: netip.IPv4Unspecified(), Daddr: netip.IPv4Unspecified(), Sport: 40000,
			Dport: 80, Old: tc.old, New: events.Close, Flags: tc.flags}
		f.trk.Apply(&ev, f.emit)
		end := f.reports[len(f.reports)-1]
		if end.Reason != tc.reason || end.Ev.Daddr != server || end.Ev.Saddr != client || end.Dur != 60*time.Second {
			t.Errorf("%s: end %+v %+v", tc.reason, end, end.Ev)
		}
		if f.trk.Stats().Sockets != 0 {
			t.Errorf("%s: socket left in table", tc.reason)
		}
	}
}

func TestCloseWaitLeakOnceAndResolved(t *testing.T) {
	f := newFeed(t, Config{CloseWaitThreshold: time.Minute})
	f.state(3, 200, events.Established, events.CloseWait, 0)
	f.trk.Tick(f.emit)
	if len(f.reports) != 1 {
		t.Fatalf("leak reported early: %+v", f.reports)
	}
	f.clk.advance(61 * time.Second)
	if !f.trk.HasPendingFindings() {
		t.Fatal("no pending finding past the threshold")
	}
	f.trk.Tick(f.emit)
	f.trk.Tick(f.emit)
	var leaks []Report
	for _, r := range f.reports {
		if r.Kind == ReportCloseWaitLeak {
			leaks = append(leaks, r)
		}
	}
	if len(leaks) != 1 || leaks[0].Age != 61*time.Second || leaks[0].Ev.Pid != 200 || leaks[0].State != events.CloseWait {
		t.Fatalf("leaks: %+v", leaks)
	}
	if p, _ := f.trk.Processes(); p[0].Leaking != 1 {
		t.Fatalf("process leaking %d", p[0].Leaking)
	}
	f.state(3, 200, events.CloseWait, events.LastAck, 0)
	last := f.reports[len(f.reports)-1]
	if last.Kind != ReportCloseWaitResolved || last.Age != 61*time.Second {
		t.Fatalf("resolution: %+v", last)
	}
	if p, _ := f.trk.Processes(); p[0].Leaking != 0 {
		t.Fatalf("still leaking %d after resolution", p[0].Leaking)
	}
}

func TestStuckFinWait(t *testing.T) {
	f := newFeed(t, Config{FinWait1Threshold: time.Second, FinWait2Threshold: time.Minute})
	f.state(4, 1, events.Established, events.FinWait1, 0)
	f.state(5, 1, events.FinWait1, events.FinWait2, 0)
	f.clk.advance(2 * time.Second)
	f.trk.Tick(f.emit)
	f.trk.Tick(f.emit)
	var stuck []Report
	for _, r := range f.reports {
		if r.Kind == ReportStuck {
			stuck = append(stuck, r)
		}
	}
	if len(stuck) != 1 || stuck[0].State != events.FinWait1 {
		t.Fatalf("stuck: %+v", stuck)
	}
}

func TestTimeWaitPressureHysteresis(t *testing.T) {
	f := newFeed(t, Config{TimeWaitShare: 0.5, PortRange: [2]uint16{40000, 40009}}) // 5 of 10 ports
	for c := uint64(1); c <= 5; c++ {
		f.state(c, 9, events.FinWait2, events.TimeWait, 0)
	}
	f.trk.Tick(f.emit)
	f.trk.Tick(f.emit)
	count := func() (n int) {
		for _, r := range f.reports {
			if r.Kind == ReportTimeWaitPressure {
				n++
			}
		}
		return
	}
	if n := count(); n != 1 {
		t.Fatalf("%d pressure reports, want 1", n)
	}
	p := f.reports[len(f.reports)-1]
	if p.Count != 5 || p.PortRange != 10 || p.Peer != netip.AddrPortFrom(server, 80) || p.Ev.Pid != 9 {
		t.Fatalf("pressure: %+v", p)
	}
	// Below half the limit the alarm re-arms; back up, it fires again.
	for c := uint64(1); c <= 4; c++ {
		f.state(c, 9, events.TimeWait, events.Close, 0)
	}
	f.trk.Tick(f.emit)
	for c := uint64(10); c <= 14; c++ {
		f.state(c, 9, events.FinWait2, events.TimeWait, 0)
	}
	f.trk.Tick(f.emit)
	if n := count(); n != 2 {
		t.Fatalf("%d pressure reports after easing and rising again, want 2", n)
	}
}

// Pressure counts only what can run a process out of ports: TIME_WAITs it
// owns, from one local address towards one peer, on ephemeral ports. Rows
// without an owner (TIME_WAITs from before the daemon) never count.
func TestTimeWaitPressureCountsOnlyOwnedEphemeral(t *testing.T) {
	f := newFeed(t, Config{TimeWaitShare: 0.5, PortRange: [2]uint16{40000, 40009}})
	add := func(cookie uint64, pid uint32, local netip.Addr, sport uint16) {
		ev := events.Event{Kind: events.KindState, Mono: f.clk.now(), Cookie: cookie, Pid: pid,
			Comm: comm("curl"), Owner: events.OwnerConnect, Family: events.IPv4,
			Saddr: local, Daddr: server, Sport: sport, Dport: 80, Old: events.FinWait2, New: events.TimeWait}
		f.trk.Apply(&ev, f.emit)
	}
	other := netip.MustParseAddr("127.0.0.2")
	for c := uint64(1); c <= 3; c++ {
		add(c, 9, client, 40000+uint16(c))    // 3 from one address
		add(10+c, 9, other, 40000+uint16(c))  // 3 from another
		add(20+c, 0, client, 40005+uint16(c)) // 3 without an owner
		add(30+c, 9, client, 50000+uint16(c)) // 3 on ports outside the range
	}
	f.trk.Tick(f.emit)
	for _, r := range f.reports {
		if r.Kind == ReportTimeWaitPressure {
			t.Fatalf("pressure with at most 3 of 10 ports used per local address: %+v", r)
		}
	}
	add(5, 9, client, 40005)
	add(6, 9, client, 40006)
	f.trk.Tick(f.emit)
	var got []Report
	for _, r := range f.reports {
		if r.Kind == ReportTimeWaitPressure {
			got = append(got, r)
		}
	}
	if len(got) != 1 || got[0].Count != 5 || got[0].Ev.Saddr != client || got[0].Ev.Pid != 9 {
		t.Fatalf("pressure reports %+v: want one, 5 of 10 from %v", got, client)
	}
	checkIndexes(t, f.trk)
}

// TIME_WAITs the kernel does not follow get no row: nothing would end it.
func TestUnfollowedTimeWaitHasNoRow(t *testing.T) {
	f := newFeed(t, Config{})
	ev := events.Event{Kind: events.KindSocket, Mono: f.clk.now(), Cookie: 7, Family: events.IPv4,
		Saddr: client, Daddr: server, Sport: 40001, Dport: 80, Old: events.TimeWait,
		Flags: events.FlagTimeWait | events.FlagPreexisting | events.FlagUnfollowed}
	f.trk.Apply(&ev, f.emit)
	if n := f.trk.Stats().Sockets; n != 0 {
		t.Fatalf("%d rows for an unfollowed TIME_WAIT", n)
	}
	ev.Cookie, ev.Flags = 8, events.FlagTimeWait|events.FlagPreexisting
	f.trk.Apply(&ev, f.emit)
	if n := f.trk.Stats().Sockets; n != 1 {
		t.Fatalf("%d rows for a followed TIME_WAIT from before the start, want 1", n)
	}
}

func TestBounds(t *testing.T) {
	f := newFeed(t, Config{MaxSockets: 2, MaxComms: 2, MaxProcesses: 2})
	f.state(1, 1, events.Close, events.SynSent, 0)
	f.state(2, 2, events.Close, events.SynSent, 0)
	f.state(3, 3, events.Close, events.SynSent, 0)
	st := f.trk.Stats()
	if st.Sockets != 2 || st.TableFull != 1 {
		t.Fatalf("stats %+v: want 2 sockets and 1 refused", st)
	}
	// Reports still flow for the untracked socket.
	if r := f.state(3, 3, events.SynSent, events.Established, 0); r == nil {
		t.Fatal("untracked socket's transition not reported")
	}
	for i, name := range []string{"a", "b", "c", "d"} {
		ev := events.Event{Kind: events.KindState, Mono: f.clk.now(), Cookie: uint64(100 + i), Comm: comm(name),
			Family: events.IPv4, Old: events.Close, New: events.Close}
		f.trk.Apply(&ev, f.emit)
	}
	if f.trk.Stats().CommsOverflow == 0 {
		t.Fatal("comm overflow not counted")
	}
	if n := len(f.trk.Comms()); n > 3 {
		t.Fatalf("%d comm label values with MaxComms 2", n)
	}
	if p, _ := f.trk.Processes(); len(p) > 2 {
		t.Fatalf("%d processes with MaxProcesses 2", len(p))
	}
}

// Start-up: a socket found by the snapshot has an age that is only a lower
// bound; the file walk gives it an owner and a descriptor, and a later walk
// that no longer finds it takes the descriptor away.
func TestSnapshotAndFiles(t *testing.T) {
	f := newFeed(t, Config{CloseWaitThreshold: time.Second})
	snap := events.Event{Kind: events.KindSocket, Mono: f.clk.now(), Cookie: 9, Family: events.IPv4,
		Saddr: server, Daddr: client, Sport: 80, Dport: 40000, Old: events.CloseWait}
	f.trk.Apply(&snap, f.emit)
	f.trk.BeginFileScan()
	file := events.Event{Kind: events.KindFile, Mono: f.clk.now(), Cookie: 9, Pid: 300, Comm: comm("leaky"),
		Owner: events.OwnerFile, Aux: 7, Family: events.IPv4, Old: events.CloseWait}
	f.trk.ApplyFile(&file)
	f.trk.EndFileScan()
	s, _ := f.trk.Sockets(Query{States: []events.State{events.CloseWait}})
	if len(s) != 1 || s[0].Pid != 300 || s[0].FD != 7 || !s[0].SinceLowerBound || s[0].Comm.String() != "leaky" {
		t.Fatalf("after walk: %+v", s)
	}
	f.clk.advance(2 * time.Second)
	f.trk.Tick(f.emit)
	leak := f.reports[len(f.reports)-1]
	if leak.Kind != ReportCloseWaitLeak || !leak.AgeLowerBound || leak.FD != 7 {
		t.Fatalf("leak: %+v", leak)
	}
	f.trk.BeginFileScan()
	f.trk.EndFileScan()
	if s, _ := f.trk.Sockets(Query{}); s[0].FD != -1 {
		t.Fatalf("descriptor kept after the process let go: %+v", s[0])
	}
	// Leaving the state ends the lower bound: the next state is timed exactly.
	f.state(9, 300, events.CloseWait, events.LastAck, 0)
	if s, _ := f.trk.Sockets(Query{}); s[0].SinceLowerBound || s[0].State != events.LastAck {
		t.Fatalf("after a transition: %+v", s[0])
	}
}

func TestQueryFilters(t *testing.T) {
	f := newFeed(t, Config{})
	f.state(1, 10, events.Close, events.SynSent, 0)
	f.state(2, 11, events.SynSent, events.Established, 0)
	rows := func(q Query) int { s, _ := f.trk.Sockets(q); return len(s) }
	if n := rows(Query{Pid: 11}); n != 1 {
		t.Errorf("pid filter: %d", n)
	}
	if n := rows(Query{States: []events.State{events.SynSent}}); n != 1 {
		t.Errorf("state filter: %d", n)
	}
	if n := rows(Query{Port: 80}); n != 2 {
		t.Errorf("port filter: %d", n)
	}
	if n := rows(Query{Port: 81}); n != 0 {
		t.Errorf("port filter: %d", n)
	}
	if n := rows(Query{Limit: 1}); n != 1 {
		t.Errorf("limit: %d", n)
	}
}

// checkIndexes compares the sets Tick and accepted children use with a
// walk of the whole table.
func checkIndexes(t *testing.T, trk *Tracker) {
	t.Helper()
	ageing, tw, listen, unowned := 0, map[pressureKey]int{}, 0, 0
	live := map[uint32][numStates]int{}
	for _, s := range trk.sockets.rows {
		switch s.State {
		case events.CloseWait, events.FinWait1, events.FinWait2:
			ageing++
			if s.ageNext == nil {
				t.Fatalf("socket %d in %v missing from the ageing set", s.Cookie, s.State)
			}
		case events.TimeWait:
			if k, ok := trk.pressureOf(s); ok {
				tw[k]++
			}
		case events.Listen:
			listen++
		}
		if s.Pid != 0 {
			l := live[s.Pid]
			l[s.State]++
			live[s.Pid] = l
		} else {
			unowned++
		}
	}
	if trk.unowned != unowned {
		t.Fatalf("%d rows without an owner counted, table %d", trk.unowned, unowned)
	}
	if trk.ageing.len() != ageing {
		t.Fatalf("ageing set has %d rows, table %d", trk.ageing.len(), ageing)
	}
	if len(trk.timeWaits) != len(tw) {
		t.Fatalf("TIME_WAIT counts by peer: %v, table %v", trk.timeWaits, tw)
	}
	for k, n := range tw {
		if trk.timeWaits[k] != n {
			t.Fatalf("TIME_WAIT count %v = %d, table %d", k, trk.timeWaits[k], n)
		}
	}
	n := 0
	for _, ls := range trk.listeners {
		n += len(ls)
	}
	if n != listen {
		t.Fatalf("listener index has %d rows, table %d", n, listen)
	}
	for pid, l := range live {
		if p := trk.procs[pid]; p == nil || p.Live != l {
			t.Fatalf("process %d live %v, table %v", pid, p, l)
		}
	}
}

// TestIndexesFollowTheTable drives random but valid lives of sockets,
// owners changing by close and by the file table, and checks the indexes
// after every record.
func TestIndexesFollowTheTable(t *testing.T) {
	f := newFeed(t, Config{})
	lives := [][]events.State{
		{events.Close, events.SynSent, events.Established, events.FinWait1, events.FinWait2, events.TimeWait, events.Close},
		{events.Listen, events.SynRecv, events.Established, events.CloseWait, events.LastAck, events.Close},
		{events.Close, events.Listen, events.Close},
		{events.Close, events.SynSent, events.Established, events.CloseWait, events.LastAck, events.Close},
		{events.Close, events.SynSent, events.Close},
	}
	type sock struct {
		cookie uint64
		life   []events.State
		at     int
	}
	var socks []*sock
	seed := uint64(1)
	rnd := func(n int) int {
		seed = seed*6364136223846793005 + 1442695040888963407
		return int(seed>>33) % n
	}
	for i := 0; i < 3000; i++ {
		f.clk.advance(time.Millisecond)
		if len(socks) < 50 && rnd(3) == 0 {
			socks = append(socks, &sock{cookie: uint64(i + 1), life: lives[rnd(len(lives))]})
			continue
		}
		if len(socks) == 0 {
			continue
		}
		k := rnd(len(socks))
		s := socks[k]
		old, nw := s.life[s.at], s.life[s.at+1]
		pid := uint32(100 + rnd(4))
		ev := events.Event{Kind: events.KindState, Mono: f.clk.now(), Cookie: s.cookie, Comm: comm("app"),
			Family: events.IPv4, Saddr: client, Daddr: server, Sport: uint16(1000 + k), Dport: 80, Old: old, New: nw}
		switch nw {
		case events.SynSent:
			ev.Pid, ev.Owner = pid, events.OwnerConnect
		case events.Listen:
			ev.Pid, ev.Owner, ev.Daddr, ev.Dport = pid, events.OwnerListen, netip.IPv4Unspecified(), 0
		case events.FinWait1, events.LastAck:
			ev.Pid, ev.Owner = pid, events.OwnerClose
		}
		if nw == events.TimeWait {
			ev.Kind, ev.Flags = events.KindTimeWaitSwitch, events.FlagTimeWait
		}
		if rnd(5) == 0 && nw != events.Close {
			file := ev
			file.Kind, file.Pid, file.Owner, file.Old = events.KindFile, uint32(200+rnd(3)), events.OwnerFile, old
			f.trk.Apply(&file, f.emit)
			checkIndexes(t, f.trk)
		}
		f.trk.Apply(&ev, f.emit)
		s.at++
		if s.at == len(s.life)-1 {
			socks[k] = socks[len(socks)-1]
			socks = socks[:len(socks)-1]
		}
		checkIndexes(t, f.trk)
		if i%100 == 0 {
			f.trk.Tick(f.emit)
			checkIndexes(t, f.trk)
		}
	}
}

// A record whose old state is not the row's tells of a change no program
// ran for: it is streamed as inferred, before the record, which then has no
// duration. Not when the kernel filters records (InferGaps off), and not
// for a row whose state came from the start-up snapshot.
func TestGapIsInferred(t *testing.T) {
	f := newFeed(t, Config{InferGaps: true})
	f.state(1, 7, events.SynRecv, events.Established, 0)
	f.state(1, 7, events.Established, events.CloseWait, 0)
	f.clk.advance(time.Millisecond)
	n := len(f.reports)
	f.state(1, 7, events.LastAck, events.Close, 0) // CLOSE_WAIT -> LAST_ACK unseen
	got := f.reports[n:]
	if len(got) != 2 {
		t.Fatalf("reports: %+v", got)
	}
	inf, next := got[0], got[1]
	if inf.Source != SourceInferred || inf.Ev.Old != events.CloseWait || inf.Ev.New != events.LastAck || inf.HasDur || inf.Ev.Pid != 7 {
		t.Errorf("inferred: %s %s -> %s dur %v pid %d", inf.Source, inf.Ev.Old, inf.Ev.New, inf.HasDur, inf.Ev.Pid)
	}
	if next.Source != SourceTracepoint || next.Ev.Old != events.LastAck || next.HasDur {
		t.Errorf("the record after the gap: %s %s -> %s dur %v", next.Source, next.Ev.Old, next.Ev.New, next.HasDur)
	}
	if st := f.trk.Stats(); st.Inferred != 1 || st.Sockets != 0 {
		t.Errorf("stats: %+v", st)
	}

	off := newFeed(t, Config{})
	off.state(1, 7, events.Established, events.CloseWait, 0)
	off.state(1, 7, events.LastAck, events.Close, 0)
	if st := off.trk.Stats(); st.Inferred != 0 || len(off.reports) != 2 {
		t.Errorf("without InferGaps: %d inferred, %d reports", st.Inferred, len(off.reports))
	}

	snap := newFeed(t, Config{InferGaps: true})
	snap.trk.Apply(&events.Event{Kind: events.KindSocket, Cookie: 1, Family: events.IPv4, Saddr: client, Daddr: server,
		Sport: 40000, Dport: 80, Old: events.FinWait2, New: events.FinWait2}, snap.emit)
	if st := snap.trk.Stats(); st.Sockets != 1 {
		t.Fatalf("the snapshot made %d rows", st.Sockets)
	}
	snap.state(1, 7, events.Established, events.FinWait1, 0) // from the ring, older than the snapshot
	if st := snap.trk.Stats(); st.Inferred != 0 {
		t.Errorf("a snapshot row's gap was inferred: %d", st.Inferred)
	}
}

// A FIN_WAIT1 row is checked once a second after it entered the state,
// long before any stuck threshold, and at stop whatever its age: the
// kernel runs no program for some FIN_WAIT1 exits, and the stream says so
// within seconds.
func TestQuickCheckOfFinWait1(t *testing.T) {
	f := newFeed(t, Config{FinWait1Threshold: time.Minute, FinWait2Threshold: time.Minute})
	f.state(1, 7, events.Established, events.FinWait1, 0) // the kernel still has it there
	f.state(2, 7, events.Established, events.FinWait1, 0) // went on to TIME_WAIT unseen
	f.clk.advance(500 * time.Millisecond)
	if d := f.trk.DueChecks(false); len(d) != 0 {
		t.Fatalf("due at 0.5 s: %+v", d)
	}
	f.clk.advance(600 * time.Millisecond)
	due := f.trk.DueChecks(false)
	if len(due) != 2 {
		t.Fatalf("due at 1.1 s: %+v", due)
	}
	for _, d := range due {
		st := map[uint64]events.State{1: events.FinWait1, 2: events.TimeWait}[d.Cookie]
		f.trk.Settle(d, st, true, f.emit)
	}
	if d := f.trk.DueChecks(false); len(d) != 0 {
		t.Errorf("asked again before the stuck threshold: %+v", d)
	}
	if d := f.trk.DueChecks(true); len(d) != 0 {
		t.Errorf("a row the kernel confirmed is asked again at stop: %+v", d)
	}
	if st := f.trk.Stats(); st.Inferred != 1 {
		t.Errorf("inferred %d, want 1", st.Inferred)
	}
	f.state(3, 7, events.Established, events.FinWait1, 0)
	if d := f.trk.DueChecks(true); len(d) != 1 || d[0].Cookie != 3 {
		t.Errorf("at stop, due %+v: want the new FIN_WAIT1 row, whatever its age", d)
	}
	// The confirmed row is asked again at its stuck threshold (beside the
	// new row's quick check and the inferred TIME_WAIT's end).
	f.clk.advance(time.Minute)
	got := map[uint64]events.State{}
	for _, d := range f.trk.DueChecks(false) {
		got[d.Cookie] = d.State
	}
	if want := map[uint64]events.State{1: events.FinWait1, 2: events.TimeWait, 3: events.FinWait1}; !maps.Equal(got, want) {
		t.Errorf("due at the threshold: %v, want %v", got, want)
	}
}

// A row about to be reported stuck is checked against the kernel first:
// one the kernel still holds in its state is reported; one it holds in
// another state, or not at all, gets an inferred change and no finding.
func TestSettleBeforeStuck(t *testing.T) {
	f := newFeed(t, Config{FinWait1Threshold: time.Second, FinWait2Threshold: time.Second})
	f.state(1, 7, events.Established, events.FinWait1, 0) // really stuck
	f.state(2, 7, events.Established, events.FinWait1, 0) // went on to TIME_WAIT unseen
	f.state(3, 7, events.Established, events.FinWait1, 0) // gone unseen
	f.clk.advance(2 * time.Second)
	due := f.trk.DueChecks(false)
	if len(due) != 3 {
		t.Fatalf("due: %+v", due)
	}
	kernel := map[uint64]struct {
		st    events.State
		found bool
	}{1: {events.FinWait1, true}, 2: {events.TimeWait, true}, 3: {0, false}}
	for _, d := range due {
		if d.Local != netip.AddrPortFrom(client, 40000) || d.Remote != netip.AddrPortFrom(server, 80) || d.State != events.FinWait1 {
			t.Fatalf("due row: %+v", d)
		}
		k := kernel[d.Cookie]
		f.trk.Settle(d, k.st, k.found, f.emit)
	}
	f.trk.Tick(f.emit)
	var stuck, inferred []Report
	for _, r := range f.reports {
		switch {
		case r.Kind == ReportStuck:
			stuck = append(stuck, r)
		case r.Source == SourceInferred:
			inferred = append(inferred, r)
		}
	}
	if len(stuck) != 1 || stuck[0].Ev.Cookie != 1 {
		t.Errorf("stuck: %+v", stuck)
	}
	if len(inferred) != 2 {
		t.Fatalf("inferred: %+v", inferred)
	}
	for _, r := range inferred {
		want := map[uint64]events.State{2: events.TimeWait, 3: events.Close}[r.Ev.Cookie]
		if r.Ev.Old != events.FinWait1 || r.Ev.New != want || r.HasDur || r.Ev.Pid != 7 {
			t.Errorf("inferred change of %d: %s -> %s dur %v pid %d; want FIN_WAIT1 -> %s, no duration, the row's owner",
				r.Ev.Cookie, r.Ev.Old, r.Ev.New, r.HasDur, r.Ev.Pid, want)
		}
	}
	if st := f.trk.Stats(); st.Inferred != 2 || st.Sockets != 2 {
		t.Errorf("stats: inferred %d, sockets %d; want 2 and 2 (the stuck one, the TIME_WAIT)", st.Inferred, st.Sockets)
	}
	// Settled once: nothing is due again, and a second answer changes nothing.
	if d := f.trk.DueChecks(false); len(d) != 0 {
		t.Errorf("due after Tick: %+v", d)
	}
	for _, d := range due {
		if d.Cookie == 3 {
			f.trk.Settle(d, 0, false, f.emit)
		}
	}
	if st := f.trk.Stats(); st.Inferred != 2 {
		t.Errorf("a repeated answer counted again: %d", st.Inferred)
	}

	// No timer record will end the TIME_WAIT found that way: once it has
	// had its 60 s the kernel is asked again, until it is gone.
	f.clk.advance(61 * time.Second)
	due = f.trk.DueChecks(false)
	if len(due) != 1 || due[0].Cookie != 2 || due[0].State != events.TimeWait {
		t.Fatalf("due after 61 s: %+v", due)
	}
	f.trk.Settle(due[0], events.TimeWait, true, f.emit)
	if d := f.trk.DueChecks(false); len(d) != 1 {
		t.Fatalf("a TIME_WAIT the kernel still holds is not asked about again: %+v", d)
	}
	f.trk.Settle(due[0], 0, false, f.emit)
	last := f.reports[len(f.reports)-1]
	if last.Source != SourceInferred || last.Ev.Old != events.TimeWait || last.Ev.New != events.Close || last.Ev.Cookie != 2 {
		t.Errorf("end of the unfollowed TIME_WAIT: %+v", last)
	}
	if st := f.trk.Stats(); st.Inferred != 3 || st.Sockets != 1 {
		t.Errorf("after its end: inferred %d, sockets %d; want 3 and 1", st.Inferred, st.Sockets)
	}
	if d := f.trk.DueChecks(false); len(d) != 0 {
		t.Errorf("due at the end: %+v", d)
	}
}

// A change the kernel side reports a second time (the nested stand-in,
// after an interrupt, a few in ten million) is dropped and counted, even
// when the socket has moved on since.
func TestDuplicateDropped(t *testing.T) {
	f := newFeed(t, Config{})
	f.state(1, 5, events.Close, events.SynSent, 0)
	f.state(1, 5, events.SynSent, events.Established, 0)
	if r := f.state(1, 5, events.SynSent, events.Established, 0); r != nil {
		t.Errorf("the repeat right after was reported: %+v", r)
	}
	f.state(1, 5, events.Established, events.FinWait1, 0)
	if r := f.state(1, 5, events.SynSent, events.Established, 0); r != nil {
		t.Errorf("the repeat after the next change was reported: %+v", r)
	}
	if r := f.state(1, 5, events.FinWait1, events.FinWait2, 0); r == nil || r.Ev.New != events.FinWait2 {
		t.Errorf("the next real change was not reported: %+v", r)
	}
	if st := f.trk.Stats(); st.Duplicates != 2 {
		t.Errorf("duplicates %d, want 2", st.Duplicates)
	}
	if n := len(f.reports); n != 4 {
		t.Errorf("%d reports, want 4", n)
	}
	// A repeated change to CLOSE comes when the row is gone: dropped too.
	f.state(1, 5, events.FinWait2, events.Close, 0)
	if r := f.state(1, 5, events.FinWait2, events.Close, 0); r != nil {
		t.Errorf("the repeated close was reported: %+v", r)
	}
	// The same socket connecting again is a new life: its close counts.
	f.state(1, 5, events.Close, events.SynSent, 0)
	if r := f.state(1, 5, events.SynSent, events.Close, 0); r == nil {
		t.Error("the close of a second connect from the same socket was dropped")
	}
	if st := f.trk.Stats(); st.Duplicates != 3 {
		t.Errorf("duplicates %d, want 3", st.Duplicates)
	}
}

// twoListeners: processes 100 (worker-a) and 200 (worker-b) listen on
// server:80 with SO_REUSEPORT, as cookies 1 and 2.
func (f *feed) twoListeners() {
	for i, name := range []string{"worker-a", "worker-b"} {
		ev := events.Event{Kind: events.KindState, Mono: f.clk.now(), Cookie: uint64(i + 1), Pid: uint32(100 * (i + 1)),
			Comm: comm(name), Owner: events.OwnerListen, Family: events.IPv4,
			Saddr: server, Sport: 80, Old: events.Close, New: events.Listen}
		f.trk.Apply(&ev, f.emit)
	}
}

// Two processes listen on one port (SO_REUSEPORT): the child's record names
// the listener the kernel chose, and only that names the owner.
func TestChildTakesTheListenerTheKernelNamed(t *testing.T) {
	f := newFeed(t, Config{})
	f.twoListeners()
	child := func(cookie, listener uint64) *Report {
		ev := events.Event{Kind: events.KindState, Mono: f.clk.now(), Cookie: cookie,
			Aux: listener, Family: events.IPv4, Saddr: server, Daddr: client,
			Sport: 80, Dport: 40000, Old: events.Listen, New: events.SynRecv}
		f.trk.Apply(&ev, f.emit)
		return &f.reports[len(f.reports)-1]
	}
	if r := child(10, 2); r.Ev.Pid != 200 || r.Ev.Comm.String() != "worker-b" || r.Ev.Owner != events.OwnerAccept {
		t.Fatalf("child of listener 2: pid %d comm %q owner %v, want 200 worker-b accept", r.Ev.Pid, r.Ev.Comm, r.Ev.Owner)
	}
	if r := child(11, 1); r.Ev.Pid != 100 {
		t.Fatalf("child of listener 1: pid %d, want 100", r.Ev.Pid)
	}
	// Without the kernel's word the two listeners are ambiguous.
	if r := child(12, 0); r.Ev.Pid != 0 {
		t.Fatalf("child of an unnamed listener: pid %d, want 0 (ambiguous)", r.Ev.Pid)
	}
	// A cookie that is not a listener's row names nobody.
	if r := child(13, 10); r.Ev.Pid != 0 {
		t.Fatalf("child naming a non-listener: pid %d, want 0", r.Ev.Pid)
	}
	// The child's later records keep the owner it took.
	ev := events.Event{Kind: events.KindState, Mono: f.clk.now(), Cookie: 10, Family: events.IPv4,
		Saddr: server, Daddr: client, Sport: 80, Dport: 40000, Old: events.SynRecv, New: events.Established}
	f.trk.Apply(&ev, f.emit)
	if r := f.reports[len(f.reports)-1]; r.Ev.Pid != 200 {
		t.Fatalf("child's SYN_RECV -> ESTABLISHED: pid %d, want 200", r.Ev.Pid)
	}
}

// With the kernel naming listeners (AwaitAccept), an ambiguous child's
// changes wait for its KindAccept record, and go on unowned if it never
// comes.
func TestAmbiguousChildWaitsForItsListener(t *testing.T) {
	f := newFeed(t, Config{AwaitAccept: true})
	f.twoListeners()
	change := func(cookie uint64, old, nw events.State) {
		ev := events.Event{Kind: events.KindState, Mono: f.clk.now(), Cookie: cookie, Family: events.IPv4,
			Saddr: server, Daddr: client, Sport: 80, Dport: 40000, Old: old, New: nw}
		f.trk.Apply(&ev, f.emit)
	}
	n := len(f.reports)
	change(10, events.Listen, events.SynRecv)
	change(10, events.SynRecv, events.Established)
	change(10, events.SynRecv, events.Established) // the kernel side's rare second report
	if len(f.reports) != n {
		t.Fatalf("an ambiguous child's changes were streamed before its listener was named: %+v", f.reports[n:])
	}
	acc := events.Event{Kind: events.KindAccept, Mono: f.clk.now(), Cookie: 10, Aux: 2, Family: events.IPv4,
		Sport: 80, Old: events.Listen, New: events.Established}
	f.trk.Apply(&acc, f.emit)
	got := f.reports[n:]
	if len(got) != 2 || got[0].Ev.New != events.SynRecv || got[1].Ev.New != events.Established {
		t.Fatalf("after the accept record: %d reports, want LISTEN>SYN_RECV and SYN_RECV>ESTABLISHED", len(got))
	}
	for _, r := range got {
		if r.Ev.Pid != 200 || r.Ev.Owner != events.OwnerAccept {
			t.Errorf("%v>%v: pid %d owner %v, want 200 accept", r.Ev.Old, r.Ev.New, r.Ev.Pid, r.Ev.Owner)
		}
	}
	if st := f.trk.Stats(); st.Duplicates != 1 || st.AcceptUnnamed != 0 {
		t.Errorf("stats %+v: want 1 duplicate, 0 unnamed", st)
	}

	// Never named: after awaitFor the changes go on with no owner.
	n = len(f.reports)
	change(11, events.Listen, events.SynRecv)
	f.clk.advance(awaitFor)
	f.trk.Tick(f.emit)
	if got := f.reports[n:]; len(got) != 1 || got[0].Ev.Pid != 0 || got[0].Ev.New != events.SynRecv {
		t.Fatalf("an unnamed child after %v: %d reports, want its LISTEN>SYN_RECV with no owner", awaitFor, len(got))
	}
	if st := f.trk.Stats(); st.AcceptUnnamed != 1 {
		t.Errorf("AcceptUnnamed %d, want 1", st.AcceptUnnamed)
	}
	// It has a row now: its next change is streamed at once.
	n = len(f.reports)
	change(11, events.SynRecv, events.Established)
	if len(f.reports) != n+1 {
		t.Errorf("a released child's next change was held")
	}
}

// A waiting child whose fifth change comes (or a record that is not a
// state change) goes on at once, and that record lands on the row the
// release made, not a new one.
func TestWaitingChildReleasedByItsOwnChanges(t *testing.T) {
	f := newFeed(t, Config{AwaitAccept: true})
	f.twoListeners()
	n := len(f.reports)
	steps := [][2]events.State{{events.Listen, events.SynRecv}, {events.SynRecv, events.Established},
		{events.Established, events.CloseWait}, {events.CloseWait, events.LastAck}, {events.LastAck, events.Close}}
	for _, st := range steps {
		f.clk.advance(time.Millisecond)
		ev := events.Event{Kind: events.KindState, Mono: f.clk.now(), Cookie: 10, Family: events.IPv4,
			Saddr: server, Daddr: client, Sport: 80, Dport: 40000, Old: st[0], New: st[1]}
		f.trk.Apply(&ev, f.emit)
	}
	got := f.reports[n:]
	if len(got) != len(steps) {
		t.Fatalf("%d reports, want %d", len(got), len(steps))
	}
	for i, r := range got {
		if r.Ev.Old != steps[i][0] || r.Ev.New != steps[i][1] {
			t.Errorf("report %d: %v>%v, want %v>%v", i, r.Ev.Old, r.Ev.New, steps[i][0], steps[i][1])
		}
		if i > 0 && !r.HasDur {
			t.Errorf("report %d (%v>%v) has no duration: it did not land on the child's row", i, r.Ev.Old, r.Ev.New)
		}
	}
	if st := f.trk.Stats(); st.Sockets != 2 || st.AcceptUnnamed != 1 {
		t.Errorf("stats %+v: want the two listeners only and 1 unnamed", st)
	}
}

// Apply leaves the record it is given as it was; what the table filled in
// (owner, addresses, when the old state began) is in the report's copy.
func TestApplyLeavesTheEventUnchanged(t *testing.T) {
	f := newFeed(t, Config{})
	f.state(1, 100, events.Close, events.SynSent, 0)
	f.clk.advance(time.Millisecond)
	for _, ev := range []events.Event{
		// In softirq: no owner, no start of the old state.
		{Kind: events.KindState, Mono: f.clk.now(), Cookie: 1, Family: events.IPv4,
			Saddr: client, Daddr: server, Sport: 40000, Dport: 80, Old: events.SynSent, New: events.Established},
		// A timewait socket's end: no addresses, no port.
		{Kind: events.KindTimeWaitEnd, Mono: f.clk.now(), Cookie: 1, Family: events.IPv4,
			Saddr: netip.IPv4Unspecified(), Daddr: netip.IPv4Unspecified(), Dport: 80,
			Old: events.Established, New: events.Close, Flags: events.FlagEndedEarly},
	} {
		before := ev
		f.trk.Apply(&ev, f.emit)
		if ev != before {
			t.Fatalf("Apply changed its record:\n got %+v\nwant %+v", ev, before)
		}
		r := f.reports[len(f.reports)-1]
		if r.Ev.Pid != 100 || r.Ev.Comm.String() != "curl" || r.Ev.Saddr != client || r.Ev.Sport != 40000 {
			t.Fatalf("the report's copy lacks what the table knew: %+v", r.Ev)
		}
	}
}
