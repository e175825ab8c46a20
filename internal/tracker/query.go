package tracker

import (
	"sort"

	"github.com/tcpstated/tcpstated/internal/events"
)

// Query selects rows of the socket table; zero values select all.
type Query struct {
	States []events.State // any of them
	Pid    uint32
	Port   uint16 // either end
	Limit  int
	Newest bool // newest first instead of oldest first
}

func (q *Query) wantsState(st events.State) bool {
	if len(q.States) == 0 {
		return true
	}
	for _, s := range q.States {
		if s == st {
			return true
		}
	}
	return false
}

// Sockets returns copies of the rows matching q, oldest first (newest
// first with q.Newest), and the time they were read at (CLOCK_MONOTONIC
// ns), which their ages are relative to.
func (t *Tracker) Sockets(q Query) ([]Socket, uint64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	now := t.clock()
	out := make([]Socket, 0, 64)
	for _, s := range t.sockets.rows {
		if !q.wantsState(s.State) || q.Pid != 0 && s.Pid != q.Pid ||
			q.Port != 0 && s.Sport != q.Port && s.Dport != q.Port {
			continue
		}
		c := *s
		c.agePrev, c.ageNext = nil, nil // the table's links, not the copy's
		out = append(out, c)
	}
	age := func(s *Socket) uint64 {
		if now > s.Since {
			return now - s.Since
		}
		return 0
	}
	sort.Slice(out, func(i, j int) bool {
		if ai, aj := age(&out[i]), age(&out[j]); ai != aj {
			return (ai > aj) != q.Newest
		}
		return out[i].Cookie < out[j].Cookie
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, now
}

// Processes returns copies of every tracked process and the time they
// were read at.
func (t *Tracker) Processes() ([]Process, uint64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Process, 0, len(t.procs))
	for _, p := range t.procs {
		out = append(out, *p)
	}
	return out, t.clock()
}

// CommView is the per-comm aggregate, for metrics.
type CommView struct {
	Comm        string
	Time        [numStates]Durations
	Transitions uint64
	Leaks       uint64
	Live        [numStates]int
	Conn        ConnStats
}

// Comms returns the per-comm aggregates with live sockets by state.
func (t *Tracker) Comms() []CommView {
	t.mu.RLock()
	defer t.mu.RUnlock()
	idx := make(map[string]int, len(t.comms))
	out := make([]CommView, 0, len(t.comms))
	for name, c := range t.comms {
		idx[name] = len(out)
		out = append(out, CommView{Comm: name, Time: c.Time, Transitions: c.Transitions, Leaks: c.Leaks, Conn: c.Conn.clone()})
	}
	for _, s := range t.sockets.rows {
		name := string(s.Comm.Bytes())
		i, ok := idx[name]
		if !ok {
			// Labels stay bounded: past MaxComms names, "other".
			if len(out) >= t.cfg.MaxComms {
				name = OtherComm
			}
			if i, ok = idx[name]; !ok {
				idx[name] = len(out)
				i = len(out)
				out = append(out, CommView{Comm: name})
			}
		}
		out[i].Live[s.State]++
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Comm < out[j].Comm })
	return out
}
