package tracker

import (
	"syscall"
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
)

// A full socket passes through at most five states before CLOSE or
// TIME_WAIT: SYN_SENT or SYN_RECV, ESTABLISHED, then FIN_WAIT1 and
// FIN_WAIT2 or CLOSING, or CLOSE_WAIT and LAST_ACK.
const pathLen = 5

// connPath is what a row keeps for its connection's summary: the states
// it entered and when, 48 bytes a row.
type connPath struct {
	at     [pathLen]uint64
	states [pathLen]events.State
	n      uint8
	// lowerBound: the first state was found by the start-up snapshot or
	// a gap: it began before at[0].
	lowerBound bool
	done       bool // summarized
}

// counters are what a summary says a full socket sent and received, from
// the kernel's counters at one of its changes.
type counters struct {
	sent, received uint64 // without the FINs; sent still with a client's SYN
	srtt, retrans  uint32
}

func countersOf(ev *events.Event) counters {
	sent, received := ev.Payload()
	return counters{sent, received, ev.Totals.SRTTMicros, ev.Totals.Retrans}
}

// keepCounters keeps the counters of a full socket's change to FIN_WAIT2,
// which may be its last: an orphaned FIN_WAIT2 goes on in a timewait
// socket, whose records carry none, until its summary. Kept aside, not in
// the row: a few sockets are there at a time, and every row would grow by
// a sixth. measured: ev came from the kernel (an inferred change has no
// counters).
func (t *Tracker) keepCounters(ev *events.Event, measured bool) {
	if t.cfg.Connections && measured && ev.Kind == events.KindState && ev.New == events.FinWait2 {
		t.finWait2[ev.Cookie] = countersOf(ev)
	}
}

// enter adds the state row r enters with ev to its path.
func (p *connPath) enter(r *Socket, ev *events.Event) {
	if p.n == 0 {
		switch {
		case r.State.Valid() && r.State != events.Close && r.State != events.Listen:
			// A row from the snapshot: its path starts where it was found.
			p.states[0], p.at[0], p.lowerBound, p.n = r.State, r.Since, true, 1
		case ev.Old != events.Close && ev.Old != events.Listen:
			p.lowerBound = true // first seen past its start
		}
	}
	if p.n < pathLen {
		p.states[p.n], p.at[p.n] = ev.New, ev.Mono
		p.n++
	}
}

// Role is which end of the connection a socket is.
type Role uint8

const (
	RoleUnknown Role = iota // found already connected
	RoleClient              // it called connect()
	RoleServer              // a listener's child
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	}
	return "unknown"
}

// How a connection ended (the `end` field).
const (
	EndNormal          = "normal"            // FINs both ways
	EndResetSent       = "reset_sent"        // closed with an RST: SO_LINGER {1,0}, unread data, aborted
	EndResetReceived   = "reset_received"    // the peer sent an RST
	EndRefused         = "refused"           // an RST answered the SYN
	EndTimedOut        = "timed_out"         // retransmissions or keepalives ran out
	EndFinWait2Timeout = "fin_wait2_timeout" // the peer never sent its FIN
	EndEndedEarly      = "ended_early"       // the orphaned FIN_WAIT2 was killed before its timer
)

// Who sent the first FIN (the `closed_first` field).
const (
	ClosedByLocal = "local" // this side (FIN_WAIT1)
	ClosedByPeer  = "peer"  // the other side (CLOSE_WAIT)
)

// Step is the time a connection spent in one state.
type Step struct {
	State events.State
	Dur   time.Duration
}

// Connection is the summary of one connection, reported when its full
// socket closes or hands over to a timewait socket.
type Connection struct {
	Role        Role
	End         string
	ClosedFirst string // "" when neither side sent a FIN
	TimeWait    bool   // it went on to TIME_WAIT, whose end is its own event
	// TimeWaitUnknown: without the timewait feature, whether it did.
	TimeWaitUnknown bool
	// Life from the first state seen to the end; LifeLowerBound when the
	// first state began before tracing saw it.
	Life           time.Duration
	LifeLowerBound bool
	// Handshake: SYN_SENT or SYN_RECV to ESTABLISHED, when seen.
	Handshake    time.Duration
	HasHandshake bool
	Steps        [pathLen]Step
	N            int
	// From the kernel's counters at the full socket's last change; not
	// HasTotals when no change of it was seen (found by the snapshot).
	HasTotals     bool
	BytesSent     uint64 // acked by the peer
	BytesReceived uint64
	SRTT          time.Duration // smoothed RTT at the end
	Retransmits   uint32        // segments sent again
}

// summarize reports row s's connection if the change ev ends it: the full
// socket closes, or its timewait socket enters TIME_WAIT or ends in
// FIN_WAIT2. Once per row.
func (t *Tracker) summarize(s *Socket, ev *events.Event, measured bool, emit func(*Report)) {
	p := &s.conn
	if p.done || p.n == 0 && !s.State.Valid() || s.State == events.Listen || s.State == events.TimeWait {
		return // a listener, or a connection that ended before tracing
	}
	c := &t.connSum
	*c = Connection{Role: roleOf(p)}
	switch {
	case ev.New == events.TimeWait:
		c.TimeWait, c.End = true, EndNormal
	case ev.Kind == events.KindTimeWaitEnd && ev.Old == events.FinWait2:
		// The orphaned FIN_WAIT2 ended without the peer's FIN.
		c.End = EndFinWait2Timeout
		if ev.Flags&events.FlagEndedEarly != 0 {
			c.End = EndEndedEarly
		}
	case ev.New == events.Close && ev.Kind == events.KindState:
		c.End = closeReason(ev.Old, ev.SockErr())
		if !t.cfg.TimeWaitFollowed && (ev.Old == events.FinWait2 || ev.Old == events.Closing) && ev.SockErr() == 0 {
			// It may have gone on in a timewait socket no program sees.
			c.End, c.TimeWaitUnknown = EndNormal, true
		}
	default:
		return
	}
	// The path, with the state it ends in if the row never entered it.
	p.done = true
	if p.n == 0 {
		p.states[0], p.at[0], p.lowerBound, p.n = s.State, s.Since, s.SinceLowerBound, 1
	}
	for i := 0; i < int(p.n); i++ {
		end := ev.Mono
		if i+1 < int(p.n) {
			end = p.at[i+1]
		}
		var d time.Duration
		if end > p.at[i] {
			d = time.Duration(end - p.at[i])
		}
		c.Steps[i] = Step{p.states[i], d}
		c.Life += d
		switch p.states[i] {
		case events.FinWait1:
			if c.ClosedFirst == "" {
				c.ClosedFirst = ClosedByLocal
			}
		case events.CloseWait:
			if c.ClosedFirst == "" {
				c.ClosedFirst = ClosedByPeer
			}
		}
	}
	c.N = int(p.n)
	var n counters
	kept, ok := t.finWait2[s.Cookie]
	switch {
	case ev.Kind == events.KindState && measured:
		n, c.HasTotals = countersOf(ev), true
	case ok:
		n, c.HasTotals = kept, true
	}
	if ok {
		delete(t.finWait2, s.Cookie)
	}
	if c.HasTotals {
		if c.Role == RoleClient {
			n.sent -= min(n.sent, 1) // its SYN, once acked
		}
		c.BytesSent, c.BytesReceived = n.sent, n.received
		c.SRTT, c.Retransmits = time.Duration(n.srtt)*time.Microsecond, n.retrans
	}
	c.LifeLowerBound = p.lowerBound
	if (p.states[0] == events.SynSent || p.states[0] == events.SynRecv) && p.n > 1 && p.states[1] == events.Established {
		c.Handshake, c.HasHandshake = c.Steps[0].Dur, true
	}
	t.countConnection(s, c)
	r := &t.connReport
	*r = Report{Kind: ReportConnection, Ev: ev, Mono: ev.Mono, FD: s.FD, Conn: c}
	emit(r)
}

func roleOf(p *connPath) Role {
	if p.lowerBound || p.n == 0 {
		return RoleUnknown
	}
	switch p.states[0] {
	case events.SynSent:
		return RoleClient
	case events.SynRecv:
		return RoleServer
	}
	return RoleUnknown
}

// closeReason names why a full socket went from old to CLOSE, from the
// error the kernel had set on it by then (the record's sk_err).
func closeReason(old events.State, err syscall.Errno) string {
	switch err {
	case syscall.ECONNREFUSED:
		return EndRefused
	case syscall.ECONNRESET, syscall.EPIPE:
		return EndResetReceived
	case syscall.ETIMEDOUT:
		return EndTimedOut
	}
	switch old {
	case events.LastAck, events.Closing, events.TimeWait:
		return EndNormal
	case events.FinWait2:
		return EndFinWait2Timeout // its timer, with no timewait socket to hand over to
	}
	// No error of its own: this side closed with an RST (SO_LINGER {1,0},
	// close() with unread data, connect() or the handshake aborted).
	return EndResetSent
}
