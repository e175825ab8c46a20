// Package tracker turns kernel records into what operators ask about: a
// live table of sockets with their owners and ages, time spent per state
// per process, CLOSE_WAIT leaks, hung FIN_WAITs and TIME_WAIT pressure.
package tracker

import (
	"net/netip"
	"sync"
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
)

// Config bounds and tunes the tracker.
type Config struct {
	MaxSockets   int // live table size; past it new sockets go untracked
	MaxProcesses int // per-process accounting; idle processes are evicted
	MaxComms     int // distinct comm values kept for metrics; beyond: "other"
	MaxPeers     int // distinct peers kept for connection metrics; beyond: "other"

	CloseWaitThreshold time.Duration // CLOSE_WAIT older than this is a leak
	FinWait1Threshold  time.Duration // FIN_WAIT1 older than this is stuck
	FinWait2Threshold  time.Duration // FIN_WAIT2 older than this is stuck

	// TimeWaitShare of the ephemeral port range held in TIME_WAIT by one
	// process towards one peer raises time_wait_pressure.
	TimeWaitShare float64
	PortRange     [2]uint16 // net.ipv4.ip_local_port_range

	// InferGaps: every change of a socket comes as a record (no in-kernel
	// filter by owner or state drops some), so a record whose old state is
	// not the row's tells of a change no program ran for, streamed as
	// inferred.
	InferGaps bool
	// AwaitAccept: the kernel side names the listener of each accepted
	// child (KindAccept) right after its handshake, so a child whose
	// listener is ambiguous waits for it (accept.go).
	AwaitAccept bool
	// Connections: report a summary of each connection when it ends
	// (connection.go); it needs every change of the socket.
	Connections bool
	// TimeWaitFollowed: the kernel side reports timewait sockets, so a
	// full socket that hands over to one is not seen as closing.
	TimeWaitFollowed bool
}

// Socket is one row of the live table.
type Socket struct {
	Cookie uint64
	State  events.State
	// seen: the row's last changes (old<<4 | new), to drop a change the
	// kernel side reported twice (docs/performance.md); a socket makes
	// each change at most once between its first state and CLOSE.
	seen [4]uint8
	// Since is when State began (CLOCK_MONOTONIC ns). With SinceLowerBound
	// it is only when tracing first saw the socket in that state.
	Since           uint64
	SinceLowerBound bool
	Pid             uint32
	Comm            events.Comm
	Owner           events.OwnerSource
	FD              int32 // -1: no descriptor known
	Family          events.Family
	Saddr, Daddr    netip.Addr
	Sport, Dport    uint16
	Netns           uint32
	TimeWait        bool // held by a timewait socket (the app closed it)
	Leaked          bool // close_wait_leak was reported
	Stuck           bool // stuck was reported
	// Checked: the kernel was asked about it soon after it entered
	// FIN_WAIT1 (quickCheckAfter) and still had it there.
	Checked bool
	// Unfollowed: a TIME_WAIT found only by asking the kernel; no timer
	// record will end it, so the kernel is asked again once it is due.
	Unfollowed bool
	fdScan     uint32
	conn       connPath
	// Links in the tracker's ageList while the row is in it.
	agePrev, ageNext *Socket
}

// Stats counts the tracker's own limits being hit.
type Stats struct {
	Sockets, SocketsMax int
	TableFull           uint64 // sockets not tracked: table full
	ProcessesEvicted    uint64
	CommsOverflow       uint64 // events counted under comm="other"
	Malformed           uint64
	UnknownTimeWaitEnds uint64 // timewait ends for sockets not in the table
	// Duplicates: changes reported a second time by the kernel side,
	// dropped.
	Duplicates uint64
	// Inferred: changes no program ran for, found in the kernel's socket
	// table (Settle) or from a record's old state (inferGap); reported
	// with source "inferred".
	Inferred uint64
	// AcceptUnnamed: accepted children of an ambiguous listener that the
	// kernel side did not name in time (or whose wait was full): streamed
	// with no owner, as without the accept feature.
	AcceptUnnamed uint64
	// RSTs by direction (the resets feature).
	ResetsSent, ResetsReceived uint64
	PeersOverflow              uint64 // connections counted under peer="other"
}

// Tracker is safe for one writer (the pipeline) and many readers (API).
type Tracker struct {
	mu    sync.RWMutex
	cfg   Config
	clock func() uint64
	// now is the newest record's time: reading the clock for every
	// record cost more than the rest of the tracker.
	now uint64

	sockets table
	// Accepted children waiting for the kernel to name their listener.
	awaiting  map[uint64]*awaiting
	awaitFree []*awaiting
	releasing bool // applying a waiting child's changes
	// Rows in LISTEN by namespace and port: an accepted child's owner
	// until its own close names one (the kernel keeps none).
	listeners map[listenKey][]*Socket
	// Rows Tick looks at: those that may age into a finding, and the
	// TIME_WAIT count by process and peer. Walking the whole table every
	// second (mostly TIME_WAIT rows) was a tenth of the daemon.
	ageing    ageList
	timeWaits map[pressureKey]int
	procs     map[uint32]*Process
	unowned   int         // live rows with no known owner
	procHot   [2]*Process // the last processes looked up
	commHot   [2]commHot
	comms     map[string]*CommStats
	peers     map[Peer]*ConnStats
	// finWait2: the counters of full sockets at their change to
	// FIN_WAIT2, until their summary (connection.go); at most one per row.
	finWait2 map[uint64]counters
	trans    [16][16]uint64 // transitions by old, new
	stats    Stats
	scanGen  uint32
	pressure map[pressureKey]bool
	free     []*Socket // rows of closed sockets, reused: no garbage per connection
	// Reports handed to emit live here: a local would escape to the heap.
	report, resolved Report
	connReport       Report
	connSum          Connection
	// in: the copy of the caller's record that the table completes, so
	// that Apply leaves the caller's record as it was.
	in       events.Event
	inferred events.Event // the record Settle and inferGap make up
	// closed: cookies of rows recently gone to CLOSE, direct-mapped, so
	// that the kernel side's rare second report of a change to CLOSE
	// (within a millisecond, the row gone by then) is dropped too.
	closed [closedSlots]uint64
	// Owners of the last rows gone to CLOSE, for the RST an abort sends
	// after it (reset.go).
	recentClosed [recentCloses]closedRow
	recentNext   uint32
}

// New makes an empty tracker. clock returns CLOCK_MONOTONIC ns.
func New(cfg Config, clock func() uint64) *Tracker {
	if cfg.MaxSockets <= 0 {
		cfg.MaxSockets = 262144
	}
	if cfg.MaxProcesses <= 0 {
		cfg.MaxProcesses = 4096
	}
	if cfg.MaxComms <= 0 {
		cfg.MaxComms = 256
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = 256
	}
	if cfg.TimeWaitShare <= 0 {
		cfg.TimeWaitShare = 0.5
	}
	if cfg.PortRange == [2]uint16{} {
		cfg.PortRange = [2]uint16{32768, 60999} // the kernel's default
	}
	t := &Tracker{
		cfg:       cfg,
		clock:     clock,
		sockets:   newTable(),
		listeners: make(map[listenKey][]*Socket),
		timeWaits: make(map[pressureKey]int),
		procs:     make(map[uint32]*Process),
		comms:     make(map[string]*CommStats),
		peers:     make(map[Peer]*ConnStats),
		finWait2:  make(map[uint64]counters),
		pressure:  make(map[pressureKey]bool),
	}
	t.ageing.init()
	return t
}

// Config returns the configuration in force.
func (t *Tracker) Config() Config { return t.cfg }

// Apply takes one kernel record and emits what it means; ev itself is
// left as it was.
func (t *Tracker) Apply(ev *events.Event, emit func(*Report)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ApplyLocked(ev, emit)
}

// Locked runs fn holding the table's lock, for a batch of ApplyLocked: a
// lock per record cost 4% of the daemon at full churn.
func (t *Tracker) Locked(fn func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fn()
}

// ApplyLocked is Apply inside Locked.
func (t *Tracker) ApplyLocked(ev *events.Event, emit func(*Report)) {
	if ev.Mono > t.now {
		t.now = ev.Mono
	}
	src := SourceTimeWaitTimer
	switch ev.Kind {
	case events.KindState:
		src = SourceTracepoint
	case events.KindTimeWaitSwitch:
		if ev.Flags&events.FlagSwitchDerived != 0 {
			src = SourceTimeWaitExpiry
		}
	case events.KindTimeWaitEnd:
	case events.KindSocket:
		t.applySnapshot(ev)
		return
	case events.KindFile:
		t.applyFile(ev)
		return
	case events.KindAccept:
		t.accepted(ev, emit)
		return
	case events.KindReset:
		t.reset(ev, emit)
		return
	default:
		return
	}
	t.in = *ev
	t.applyState(&t.in, emit, src)
}

// takesOwner says whether a record's owner replaces the row's. The kernel
// names one only in the owner's own system call: connect() and listen()
// make a socket, so they always do; close() names the owner of a socket
// that had only its listener's.
func takesOwner(ev *events.Event, s *Socket) bool {
	switch {
	case ev.Pid == 0:
		return false
	case s.Pid == 0 || s.Owner == events.OwnerUnknown:
		return true
	case ev.Owner == events.OwnerConnect || ev.Owner == events.OwnerListen:
		return true
	case ev.Owner == events.OwnerClose:
		return s.Owner == events.OwnerAccept
	}
	return false
}

// fill completes a record from the table: the kernel keeps no state per
// socket, so the owner, when the old state began and (for timewait
// records) the addresses come from the socket's earlier records.
func fill(ev *events.Event, s *Socket) {
	if !ev.Saddr.IsValid() || ev.Saddr.IsUnspecified() && ev.Kind != events.KindState {
		ev.Saddr, ev.Daddr = s.Saddr, s.Daddr
	}
	if ev.Sport == 0 {
		ev.Sport = s.Sport
	}
	if s.Pid != 0 && !takesOwner(ev, s) {
		ev.Pid, ev.Comm, ev.Owner = s.Pid, s.Comm, s.Owner
	}
	// A timewait record's own time is when the timewait socket took
	// over; the row knows when FIN_WAIT2 began in the full socket.
	if !s.SinceLowerBound && s.State == ev.Old && s.Since != 0 &&
		(ev.SinceMono == 0 || s.Since < ev.SinceMono) {
		ev.SinceMono = s.Since
	}
}

// listenKey finds the listeners an accepted child may come from.
type listenKey struct {
	netns uint32
	port  uint16
}

// listenerOf is the owned listener row the kernel side named for a
// child's record (by cookie, on the child's port and namespace), or nil.
func (t *Tracker) listenerOf(ev *events.Event) *Socket {
	cookie := ev.Listener()
	if cookie == 0 {
		return nil
	}
	l := t.sockets.get(cookie)
	if l == nil || l.State != events.Listen || l.Pid == 0 || l.Sport != ev.Sport || l.Netns != ev.Netns {
		return nil
	}
	return l
}

// inherit gives a new child (LISTEN -> SYN_RECV) its listener's owner and
// says whether the listener was ambiguous. The kernel side names the
// listener by cookie where it can; otherwise the listener on the child's
// address or the wildcard one stands in, and listeners of several
// processes on one address (SO_REUSEPORT) leave it unknown until the
// kernel's KindAccept record (accept.go), the child's close or the file
// table names it.
func (t *Tracker) inherit(ev *events.Event) (ambiguous bool) {
	if l := t.listenerOf(ev); l != nil {
		ev.Pid, ev.Comm, ev.Owner = l.Pid, l.Comm, events.OwnerAccept
		return false
	}
	var from *Socket
	exact := false
	for _, l := range t.listeners[listenKey{ev.Netns, ev.Sport}] {
		if l.Pid == 0 || l.Family != ev.Family && !l.Saddr.IsUnspecified() {
			continue
		}
		match := l.Saddr == ev.Saddr
		if !match && !l.Saddr.IsUnspecified() {
			continue
		}
		switch {
		case from == nil || match && !exact:
			from, exact = l, match
		case match == exact && from.Pid != l.Pid:
			return true
		}
	}
	if from != nil {
		ev.Pid, ev.Comm, ev.Owner = from.Pid, from.Comm, events.OwnerAccept
	}
	return false
}

// listening adds or removes a row of the listener index.
func (t *Tracker) listening(s *Socket, on bool) {
	k := listenKey{s.Netns, s.Sport}
	ls := t.listeners[k]
	for i, l := range ls {
		if l == s {
			if on {
				return
			}
			ls[i] = ls[len(ls)-1]
			ls = ls[:len(ls)-1]
			if len(ls) == 0 {
				delete(t.listeners, k)
			} else {
				t.listeners[k] = ls
			}
			return
		}
	}
	if on {
		t.listeners[k] = append(ls, s)
	}
}

// closedSlots bounds the memory of recently closed cookies: 32 KiB,
// thousands of closes, far more than a millisecond's worth.
const closedSlots = 4096

func (t *Tracker) applyState(ev *events.Event, emit func(*Report), src Source) {
	s := t.sockets.get(ev.Cookie)
	if ev.Kind == events.KindState && (s != nil && s.saw(ev.Old, ev.New) ||
		s == nil && ev.New == events.Close && ev.Cookie != 0 && t.closed[ev.Cookie%closedSlots] == ev.Cookie) {
		t.stats.Duplicates++
		return
	}
	if s == nil && len(t.awaiting) > 0 {
		if t.waiting(ev, emit) {
			return
		}
		s = t.sockets.get(ev.Cookie) // waiting may have released the child's row
	}
	if ev.Old == events.Listen && ev.New == events.SynRecv && ev.Pid == 0 &&
		t.inherit(ev) && src == SourceTracepoint && t.wait(ev) {
		return
	}
	if s != nil && t.cfg.InferGaps && src == SourceTracepoint && ev.Kind == events.KindState &&
		s.seen[0] != 0 && !s.TimeWait && s.State != ev.Old && ev.Old != events.Close {
		t.inferGap(s, ev, emit)
	}
	if s != nil {
		fill(ev, s)
	}
	r := &t.report
	*r = Report{Kind: ReportState, Ev: ev, Mono: ev.Mono, FD: -1, Source: src}
	if s != nil {
		r.FD = s.FD
	}
	// An inferred change happened some time before it was found out.
	if ev.SinceMono != 0 && ev.Mono >= ev.SinceMono && src != SourceInferred {
		r.Dur = time.Duration(ev.Mono - ev.SinceMono)
		r.HasDur = true
	}
	if ev.Kind == events.KindTimeWaitEnd {
		switch {
		case ev.Flags&events.FlagEndedEarly != 0:
			r.Reason = ReasonEndedEarly
		case ev.Old == events.FinWait2:
			r.Reason = ReasonFinWait2Timeout
		default:
			r.Reason = ReasonExpired
		}
		if s == nil {
			t.stats.UnknownTimeWaitEnds++
		}
	}

	// Accounting for the state left, under its owner.
	if r.HasDur {
		t.account(ev.Pid, ev.Comm, ev.Old, r.Dur)
	}
	if int(ev.Old) < len(t.trans) && int(ev.New) < len(t.trans) {
		t.trans[ev.Old][ev.New]++
	}
	t.commStats(ev.Comm).Transitions++

	emit(r)
	if s != nil && s.State == events.CloseWait && ev.New != events.CloseWait && s.Leaked {
		res := &t.resolved
		*res = *r
		res.Kind = ReportCloseWaitResolved
		res.Age = time.Duration(ev.Mono - s.Since)
		res.AgeLowerBound = s.SinceLowerBound
		res.State = events.CloseWait
		emit(res)
		t.procLeakResolved(s.Pid)
	}

	if s != nil && t.cfg.Connections {
		t.summarize(s, ev, src != SourceInferred, emit)
	}
	if ev.New == events.Close {
		if s != nil {
			if len(t.finWait2) > 0 {
				delete(t.finWait2, ev.Cookie)
			}
			t.rememberClose(s, ev.Old)
			t.unindex(s)
			t.sockets.remove(ev.Cookie)
			t.release(s)
			t.closed[ev.Cookie%closedSlots] = ev.Cookie
		}
		return
	}
	if s == nil {
		if t.sockets.len() >= t.cfg.MaxSockets {
			t.stats.TableFull++
			return
		}
		s = t.alloc(ev.Cookie)
		t.sockets.put(ev.Cookie, s)
		if t.closed[ev.Cookie%closedSlots] == ev.Cookie {
			t.closed[ev.Cookie%closedSlots] = 0 // open again (a new connect)
		}
	} else {
		t.unindex(s)
	}
	t.update(s, ev)
	s.conn.enter(s, ev)
	t.keepCounters(ev, src != SourceInferred)
	s.State, s.Since, s.SinceLowerBound = ev.New, ev.Mono, false
	s.Leaked, s.Stuck, s.Checked = false, false, false
	s.seen[0], s.seen[1], s.seen[2], s.seen[3] = change(ev.Old, ev.New), s.seen[0], s.seen[1], s.seen[2]
	s.Unfollowed = src == SourceInferred && ev.New == events.TimeWait
	if ev.New == events.TimeWait || ev.Flags&events.FlagTimeWait != 0 || ev.Kind == events.KindTimeWaitSwitch {
		s.TimeWait = true
		s.FD = -1 // a timewait socket has no descriptor
	}
	t.index(s)
}

// index files a row, as it is now, under its process's live sockets, and
// in the sets that Tick and accepted children look in; unindex undoes it
// and comes before any change of a row's state, owner or peer.
func (t *Tracker) index(s *Socket) {
	t.procMove(s.Pid, 0, s.State)
	switch s.State {
	case events.CloseWait, events.FinWait1, events.FinWait2:
		t.ageing.push(s)
	case events.TimeWait:
		if k, ok := t.pressureOf(s); ok {
			t.timeWaits[k]++
		}
		if s.Unfollowed {
			t.ageing.push(s)
		}
	case events.Listen:
		t.listening(s, true)
	}
}

func (t *Tracker) unindex(s *Socket) {
	t.procMove(s.Pid, s.State, 0)
	switch s.State {
	case events.CloseWait, events.FinWait1, events.FinWait2:
		t.ageing.remove(s)
	case events.TimeWait:
		if s.Unfollowed {
			t.ageing.remove(s)
		}
		if k, ok := t.pressureOf(s); !ok {
		} else if t.timeWaits[k] <= 1 {
			delete(t.timeWaits, k)
		} else {
			t.timeWaits[k]--
		}
	case events.Listen:
		t.listening(s, false)
	}
}

// inferGap streams the change between a row's state and the old state of
// its next record, which no record showed (the kernel ran no program for
// it). Only rows whose state came from a record: a snapshot's may be newer
// than records still in the ring. When the old state began is not known,
// so the record that follows has no duration.
func (t *Tracker) inferGap(s *Socket, ev *events.Event, emit func(*Report)) {
	t.infer(s, ev.Mono, ev.Old, emit)
	s.SinceLowerBound = true
}

// infer streams and applies a change of row s to state to that no program
// ran for, found out at mono (Settle, inferGap).
func (t *Tracker) infer(s *Socket, mono uint64, to events.State, emit func(*Report)) {
	t.stats.Inferred++
	inf := &t.inferred
	*inf = events.Event{Kind: events.KindState, Mono: mono, Cookie: s.Cookie,
		Family: s.Family, Saddr: s.Saddr, Daddr: s.Daddr, Sport: s.Sport, Dport: s.Dport,
		Netns: s.Netns, Old: s.State, New: to}
	t.applyState(inf, emit, SourceInferred)
}

// update copies what a record knows about a socket into its row.
func (t *Tracker) update(s *Socket, ev *events.Event) {
	if takesOwner(ev, s) {
		s.Pid, s.Comm, s.Owner = ev.Pid, ev.Comm, ev.Owner
	}
	s.Family, s.Netns = ev.Family, ev.Netns
	if ev.Saddr.IsValid() && !(ev.Saddr.IsUnspecified() && s.Saddr.IsValid()) {
		s.Saddr = ev.Saddr
	}
	if ev.Daddr.IsValid() && !(ev.Daddr.IsUnspecified() && s.Daddr.IsValid()) {
		s.Daddr = ev.Daddr
	}
	if ev.Sport != 0 {
		s.Sport = ev.Sport
	}
	if ev.Dport != 0 || ev.New == events.Listen {
		s.Dport = ev.Dport
	}
}

// applySnapshot adds a socket found by the start-up walk.
func (t *Tracker) applySnapshot(ev *events.Event) {
	if t.sockets.get(ev.Cookie) != nil {
		return // tracing saw it first: that row is better
	}
	if ev.Flags&events.FlagUnfollowed != 0 {
		// Its end would never be seen, so it is not shown as live: the
		// kernel's timewait_preexisting_skipped and timewait_table_full
		// counters say how many there are.
		return
	}
	if t.sockets.len() >= t.cfg.MaxSockets {
		t.stats.TableFull++
		return
	}
	s := t.alloc(ev.Cookie)
	s.State = ev.Old
	t.update(s, ev)
	if ev.SinceMono != 0 {
		s.Since = ev.SinceMono
	} else {
		s.Since, s.SinceLowerBound = ev.Mono, true
	}
	s.TimeWait = ev.Flags&events.FlagTimeWait != 0
	t.sockets.put(ev.Cookie, s)
	t.index(s)
}

// applyFile records that a process holds a socket as a descriptor.
func (t *Tracker) applyFile(ev *events.Event) {
	s := t.sockets.get(ev.Cookie)
	if s == nil {
		if !ev.Old.Valid() || ev.Old == events.Close {
			return // an unconnected socket: nothing to track
		}
		t.applySnapshot(ev)
		if s = t.sockets.get(ev.Cookie); s == nil {
			return
		}
	}
	s.fdScan = t.scanGen
	// The holder is the owner unless the socket's creator still holds it.
	if s.Pid != ev.Pid && (s.Owner == events.OwnerAccept || s.Owner == events.OwnerUnknown || s.Owner == events.OwnerFile) {
		t.unindex(s)
		s.Pid, s.Comm, s.Owner = ev.Pid, ev.Comm, events.OwnerFile
		t.index(s)
	}
	if s.Pid == ev.Pid {
		s.FD = int32(ev.FD())
	}
}

// BeginFileScan and EndFileScan bracket one walk of the file tables: a
// socket no process holds any more loses its descriptor.
func (t *Tracker) BeginFileScan() {
	t.mu.Lock()
	t.scanGen++
	t.mu.Unlock()
}

// EndFileScan closes a walk started by BeginFileScan.
func (t *Tracker) EndFileScan() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sockets.rows {
		if s.fdScan != t.scanGen {
			s.FD = -1
		}
	}
}

// ApplyFiles runs fn (a walk of the file tables feeding ApplyFile) inside
// one scan generation.
func (t *Tracker) ApplyFile(ev *events.Event) {
	t.mu.Lock()
	t.applyFile(ev)
	t.mu.Unlock()
}

// Stats returns the tracker's own counters.
func (t *Tracker) Stats() Stats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	st := t.stats
	st.Sockets = t.sockets.len()
	st.SocketsMax = t.cfg.MaxSockets
	return st
}

// Transitions returns the count of transitions by old and new state.
func (t *Tracker) Transitions() [16][16]uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.trans
}

// alloc returns a zeroed row, reusing a released one when it can.
func (t *Tracker) alloc(cookie uint64) *Socket {
	var s *Socket
	if n := len(t.free); n > 0 {
		s, t.free = t.free[n-1], t.free[:n-1]
		*s = Socket{}
	} else {
		s = &Socket{}
	}
	s.Cookie, s.FD = cookie, -1
	return s
}

// release keeps a row for reuse, up to a bound.
func (t *Tracker) release(s *Socket) {
	if len(t.free) < 4096 {
		t.free = append(t.free, s)
	}
}

// change packs a state change into a byte; states fit in four bits.
func change(old, nw events.State) uint8 { return uint8(old)<<4 | uint8(nw)&0xf }

// saw says whether the row made this change among its last ones.
func (s *Socket) saw(old, nw events.State) bool {
	c := change(old, nw)
	return c != 0 && (s.seen[0] == c || s.seen[1] == c || s.seen[2] == c || s.seen[3] == c)
}
