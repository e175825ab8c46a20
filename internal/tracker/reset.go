package tracker

import "github.com/tcpstated/tcpstated/internal/events"

// Which side of an RST a reset event shows (the `direction` field).
const (
	ResetSent     = "sent"
	ResetReceived = "received"
)

// recentCloses is how many of the last sockets gone to CLOSE keep their
// owner after their row is gone: an aborted socket (SO_LINGER {1,0},
// close() with unread data) sends its RST just after its change to CLOSE.
// Records of other CPUs come between the two, never many.
const recentCloses = 64

// closedRow is what a reset needs of a socket that has just closed.
type closedRow struct {
	cookie uint64
	pid    uint32
	owner  events.OwnerSource
	comm   events.Comm
	left   events.State // the state it closed from
	fd     int32
	sport  uint16 // the kernel clears it as the socket closes
}

// rememberClose keeps the owner of row s, which leaves state old for CLOSE.
func (t *Tracker) rememberClose(s *Socket, old events.State) {
	t.recentClosed[t.recentNext%recentCloses] = closedRow{s.Cookie, s.Pid, s.Owner, s.Comm, old, s.FD, s.Sport}
	t.recentNext++
}

func (t *Tracker) recentClose(cookie uint64) *closedRow {
	for i := range t.recentClosed {
		if c := &t.recentClosed[i]; c.cookie == cookie && cookie != 0 {
			return c
		}
	}
	return nil
}

// reset reports an RST a socket sent or received, under the socket's
// owner: the kernel sends and takes most of them in softirq, on whatever
// task the CPU was running.
func (t *Tracker) reset(ev *events.Event, emit func(*Report)) {
	in := &t.in
	*in = *ev
	fd, state := int32(-1), ev.Old
	dir := ResetSent
	if ev.ResetReceived() {
		dir = ResetReceived
		t.stats.ResetsReceived++
	} else {
		t.stats.ResetsSent++
	}
	switch s := t.sockets.get(ev.Cookie); {
	case ev.Cookie == 0:
		// An RST for a segment no socket took: no owner.
	case s != nil:
		fill(in, s) // its owner, and the ports the record may lack
		fd = s.FD
	default:
		if c := t.recentClose(ev.Cookie); c != nil {
			in.Pid, in.Comm, in.Owner, fd = c.pid, c.comm, c.owner, c.fd
			if in.Sport == 0 {
				in.Sport = c.sport
			}
			if state == events.Close {
				state = c.left // aborted: the RST went with its close
			}
		} else if state == events.NewSynRecv || state == events.Listen {
			t.inherit(in) // a half-open connection: its listener's
		}
	}
	r := &t.report
	*r = Report{Kind: ReportReset, Ev: in, Mono: ev.Mono, FD: fd, State: state, Reset: dir}
	emit(r)
}
