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
	var ev events.Event
	for s := range t.ageing.all() {
		age := time.Duration(0)
		if now > s.Since {
			age = time.Duration(now - s.Since)
		}
		switch s.State {
		case events.CloseWait:
			if !s.Leaked && t.cfg.CloseWaitThreshold > 0 && age >= t.cfg.CloseWaitThreshold {
				s.Leaked = true
				if p := t.proc(s.Pid, s.Comm); p != nil && s.Pid != 0 {
					p.Leaking++
					p.Leaks++
				}
				t.commStats(s.Comm).Leaks++
				t.emitAbout(s, &ev, ReportCloseWaitLeak, age, now, emit)
			}
		case events.FinWait1, events.FinWait2:
			limit := t.cfg.FinWait1Threshold
			if s.State == events.FinWait2 {
				limit = t.cfg.FinWait2Threshold
			}
			if !s.Stuck && limit > 0 && age >= limit {
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

// HasPendingFindings says whether Tick would report something, so that
// owners and descriptors can be refreshed first.
func (t *Tracker) HasPendingFindings() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	now := t.clock()
	for s := range t.ageing.all() {
		var limit time.Duration
		switch s.State {
		case events.CloseWait:
			if s.Leaked {
				continue
			}
			limit = t.cfg.CloseWaitThreshold
		case events.FinWait1:
			limit = t.cfg.FinWait1Threshold
		case events.FinWait2:
			limit = t.cfg.FinWait2Threshold
		default:
			continue
		}
		if !s.Stuck && limit > 0 && now > s.Since && time.Duration(now-s.Since) >= limit {
			return true
		}
	}
	return false
}
