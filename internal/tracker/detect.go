package tracker

import (
	"net/netip"
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
)

// pressureKey is what one process's ephemeral ports run out for: a local
// address towards one peer (each local port can be used once there).
type pressureKey struct {
	pid   uint32
	local netip.Addr
	peer  netip.AddrPort
}

// pressureOf is the key a TIME_WAIT row counts under, if it counts: only
// sockets with a known owner and a local port from the ephemeral range
// (TIME_WAITs from before the daemon have no owner).
func (t *Tracker) pressureOf(s *Socket) (pressureKey, bool) {
	if s.Pid == 0 || s.Sport < t.cfg.PortRange[0] || s.Sport > t.cfg.PortRange[1] {
		return pressureKey{}, false
	}
	return pressureKey{s.Pid, s.Saddr, netip.AddrPortFrom(s.Daddr, s.Dport)}, true
}

// Tick looks for sockets that have stayed too long where they should not:
// CLOSE_WAIT (the application never called close()), FIN_WAIT1 and
// FIN_WAIT2 (the peer never answered), and for TIME_WAIT piling up towards
// one peer. Each finding is reported once.
func (t *Tracker) Tick(emit func(*Report)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock()
	if now > t.now {
		t.now = now
	}
	t.expireAwaiting(now, false, emit)
	var ev events.Event
	for s := range t.ageing.all() {
		age := time.Duration(0)
		if now > s.Since {
			age = time.Duration(now - s.Since)
		}
		switch s.State {
		case events.CloseWait:
			if t.dueLeak(s, now) {
				s.Leaked = true
				if p := t.proc(s.Pid, s.Comm); p != nil && s.Pid != 0 {
					p.Leaking++
					p.Leaks++
				}
				t.commStats(s.Comm).Leaks++
				t.emitAbout(s, &ev, ReportCloseWaitLeak, age, now, emit)
			}
		case events.FinWait1, events.FinWait2:
			if t.dueStuck(s, now) {
				s.Stuck = true
				t.emitAbout(s, &ev, ReportStuck, age, now, emit)
			}
		}
	}

	limit := t.portRange()
	for k, n := range t.timeWaits {
		high := float64(n) >= t.cfg.TimeWaitShare*float64(limit)
		switch {
		case high && !t.pressure[k]:
			t.pressure[k] = true
			r := Report{Kind: ReportTimeWaitPressure, Ev: &ev, Mono: now, FD: -1,
				Peer: k.peer, Count: n, PortRange: limit}
			ev = events.Event{Pid: k.pid, Saddr: k.local, Daddr: k.peer.Addr(), Dport: k.peer.Port(), Family: familyOf(k.peer.Addr())}
			if p := t.procs[k.pid]; p != nil {
				ev.Comm = p.Comm
			}
			emit(&r)
		case !high && float64(n) < t.cfg.TimeWaitShare*float64(limit)/2:
			delete(t.pressure, k) // hysteresis: report again after it eased
		}
	}
	for k := range t.pressure {
		if _, ok := t.timeWaits[k]; !ok {
			delete(t.pressure, k)
		}
	}
}

func (t *Tracker) portRange() int {
	return int(t.cfg.PortRange[1]) - int(t.cfg.PortRange[0]) + 1
}

func familyOf(a netip.Addr) events.Family {
	if a.Is4() {
		return events.IPv4
	}
	return events.IPv6
}

// emitAbout reports a finding about socket s.
func (t *Tracker) emitAbout(s *Socket, ev *events.Event, kind ReportKind, age time.Duration, now uint64, emit func(*Report)) {
	*ev = events.Event{
		Kind: events.KindState, Mono: now, Cookie: s.Cookie, Pid: s.Pid, Comm: s.Comm,
		Owner: s.Owner, Family: s.Family, Saddr: s.Saddr, Daddr: s.Daddr,
		Sport: s.Sport, Dport: s.Dport, Netns: s.Netns, Old: s.State, New: s.State,
	}
	r := Report{Kind: kind, Ev: ev, Mono: now, FD: s.FD, Age: age,
		AgeLowerBound: s.SinceLowerBound, State: s.State}
	emit(&r)
}

// timeWaitLen is TCP_TIMEWAIT_LEN, the kernel's TIME_WAIT.
const timeWaitLen = 60 * time.Second

// dueLeak says whether s has stayed in CLOSE_WAIT past the threshold and
// was not reported yet.
func (t *Tracker) dueLeak(s *Socket, now uint64) bool {
	limit := t.cfg.CloseWaitThreshold
	return s.State == events.CloseWait && !s.Leaked && limit > 0 && now > s.Since && time.Duration(now-s.Since) >= limit
}

// dueStuck says whether s has stayed past its FIN_WAIT threshold and was
// not reported yet.
func (t *Tracker) dueStuck(s *Socket, now uint64) bool {
	limit := t.cfg.FinWait1Threshold
	switch s.State {
	case events.FinWait1:
	case events.FinWait2:
		limit = t.cfg.FinWait2Threshold
	default:
		return false
	}
	return !s.Stuck && limit > 0 && now > s.Since && time.Duration(now-s.Since) >= limit
}

// quickCheckAfter: a row still in FIN_WAIT1 this long after it entered
// it is checked in the kernel's socket table once, well before any stuck
// threshold. FIN_WAIT1 lasts a round trip; the kernel runs no program for
// some of its exits (docs/performance.md), and the stream should say so
// within seconds, not minutes.
const quickCheckAfter = time.Second

// dueCheck says whether the kernel should be asked about s now: it is
// about to be reported stuck, an unfollowed TIME_WAIT that should have
// ended, or a FIN_WAIT1 row past quickCheckAfter not checked yet (any
// age when final: the daemon is stopping).
func (t *Tracker) dueCheck(s *Socket, now uint64, final bool) bool {
	switch {
	case s.State == events.TimeWait:
		return s.Unfollowed && now > s.Since && time.Duration(now-s.Since) >= timeWaitLen
	case s.State == events.FinWait1 && !s.Checked:
		if final || now > s.Since && time.Duration(now-s.Since) >= quickCheckAfter {
			return true
		}
	}
	return t.dueStuck(s, now)
}

// Due is a row that Tick would report stuck (or an unfollowed TIME_WAIT),
// for a look at the kernel's socket table first.
type Due struct {
	Cookie        uint64
	Netns         uint32
	State         events.State
	Local, Remote netip.AddrPort
}

// DueChecks lists the rows to ask the kernel about: those Tick would report
// stuck now, the unfollowed TIME_WAITs past TCP_TIMEWAIT_LEN, and the
// FIN_WAIT1 rows past quickCheckAfter (all of them when final: at stop, so
// that the stream ends with what the kernel has).
func (t *Tracker) DueChecks(final bool) []Due {
	t.mu.RLock()
	defer t.mu.RUnlock()
	now := t.clock()
	var out []Due
	for s := range t.ageing.all() {
		if t.dueCheck(s, now, final) {
			out = append(out, Due{Cookie: s.Cookie, Netns: s.Netns, State: s.State,
				Local: netip.AddrPortFrom(s.Saddr, s.Sport), Remote: netip.AddrPortFrom(s.Daddr, s.Dport)})
		}
	}
	return out
}

// Settle applies what the kernel said of a due row: still in its state
// (nothing to do: Tick reports it), in another (now), or gone (found
// false). Either of the last two is a change no program saw: it is
// reported, with source "inferred", and the row follows the kernel.
func (t *Tracker) Settle(d Due, now events.State, found bool, emit func(*Report)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sockets.get(d.Cookie)
	if s == nil || s.State != d.State {
		return
	}
	if found && now == d.State {
		s.Checked = true
		return
	}
	if !found {
		now = events.Close
	}
	t.infer(s, t.clock(), now, emit)
}

// HasPendingFindings says whether Tick would report something, so that
// owners and descriptors can be refreshed first.
func (t *Tracker) HasPendingFindings() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	now := t.clock()
	for s := range t.ageing.all() {
		if t.dueLeak(s, now) || t.dueStuck(s, now) {
			return true
		}
	}
	return false
}
