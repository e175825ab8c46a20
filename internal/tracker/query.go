package tracker

import (
	"net/netip"
	"sort"
	"time"

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

// SocketView is one socket as the API shows it.
type SocketView struct {
	Cookie         uint64    `json:"cookie"`
	Pid            uint32    `json:"pid"`
	Comm           string    `json:"comm"`
	FD             *int32    `json:"fd"` // null: no descriptor known
	Owner          string    `json:"owner"`
	State          string    `json:"state"`
	Since          time.Time `json:"since"`
	AgeS           float64   `json:"age_s"`
	AgeLowerBound  bool      `json:"age_is_lower_bound"`
	Family         string    `json:"family"`
	Saddr          string    `json:"saddr"`
	Sport          uint16    `json:"sport"`
	Daddr          string    `json:"daddr"`
	Dport          uint16    `json:"dport"`
	Netns          uint32    `json:"netns"`
	TimeWaitSocket bool      `json:"timewait_socket"`
	CloseWaitLeak  bool      `json:"close_wait_leak"`
}

// Sockets returns the rows matching q, oldest first.
func (t *Tracker) Sockets(q Query, wall func(uint64) time.Time) []SocketView {
	t.mu.RLock()
	defer t.mu.RUnlock()
	now := t.clock()
	out := make([]SocketView, 0, 64)
	for _, s := range t.sockets.rows {
		if !q.wantsState(s.State) || q.Pid != 0 && s.Pid != q.Pid ||
			q.Port != 0 && s.Sport != q.Port && s.Dport != q.Port {
			continue
		}
		v := SocketView{
			Cookie: s.Cookie, Pid: s.Pid, Comm: s.Comm.String(), Owner: s.Owner.String(),
			State: s.State.String(), Since: wall(s.Since).UTC(), AgeLowerBound: s.SinceLowerBound,
			Family: s.Family.String(), Saddr: addrString(s.Saddr), Sport: s.Sport,
			Daddr: addrString(s.Daddr), Dport: s.Dport, Netns: s.Netns,
			TimeWaitSocket: s.TimeWait, CloseWaitLeak: s.Leaked,
		}
		if now > s.Since {
			v.AgeS = float64(now-s.Since) / 1e9
		}
		if s.FD >= 0 {
			fd := s.FD
			v.FD = &fd
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].AgeS != out[j].AgeS {
			return (out[i].AgeS > out[j].AgeS) != q.Newest
		}
		return out[i].Cookie < out[j].Cookie
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// StateTimeView is time spent in one state.
type StateTimeView struct {
	Count  uint64       `json:"count"`
	TotalS float64      `json:"total_s"`
	MaxS   float64      `json:"max_s"`
	MeanS  float64      `json:"mean_s"`
	Hist   []BucketView `json:"buckets"`
}

// BucketView is one cumulative histogram bucket: stays of at most LE
// seconds (Prometheus' le); the last bucket, every stay, has LE null.
type BucketView struct {
	LE    *float64 `json:"le_s"`
	Count uint64   `json:"count"`
}

// ProcessView is one process as the API shows it.
type ProcessView struct {
	Pid            uint32                   `json:"pid"`
	Comm           string                   `json:"comm"`
	Sockets        map[string]int           `json:"sockets"`
	CloseWaitLeaks int                      `json:"close_wait_leaking"`
	LeaksTotal     int                      `json:"close_wait_leaks_total"`
	TimeWait       int                      `json:"time_wait"`
	CloseWait      int                      `json:"close_wait"`
	Time           map[string]StateTimeView `json:"time_in_state"`
	TrackedS       float64                  `json:"tracked_s"` // since the pid was first seen owning a socket
}

// Processes returns every tracked process, worst CLOSE_WAIT leakers first,
// then by TIME_WAIT held.
func (t *Tracker) Processes() []ProcessView {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]ProcessView, 0, len(t.procs))
	now := t.clock()
	for _, p := range t.procs {
		v := ProcessView{
			Pid: p.Pid, Comm: p.Comm.String(), Sockets: map[string]int{},
			TrackedS:       float64(now-min(p.firstSeen, now)) / 1e9,
			CloseWaitLeaks: p.Leaking, LeaksTotal: p.Leaks,
			TimeWait: p.Live[events.TimeWait], CloseWait: p.Live[events.CloseWait],
			Time: map[string]StateTimeView{},
		}
		for st, n := range p.Live {
			if n > 0 {
				v.Sockets[events.State(st).String()] = n
			}
		}
		for st := range p.Time {
			if d := &p.Time[st]; d.Count > 0 {
				v.Time[events.State(st).String()] = durView(d)
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.CloseWaitLeaks != b.CloseWaitLeaks {
			return a.CloseWaitLeaks > b.CloseWaitLeaks
		}
		if a.TimeWait != b.TimeWait {
			return a.TimeWait > b.TimeWait
		}
		return a.Pid < b.Pid
	})
	return out
}

func durView(d *Durations) StateTimeView {
	v := StateTimeView{Count: d.Count, TotalS: d.Total.Seconds(), MaxS: d.Max.Seconds(), MeanS: d.Mean().Seconds()}
	var cum uint64
	for i, n := range d.Hist {
		cum += n
		var le *float64
		if i < len(Buckets) {
			s := Buckets[i].Seconds()
			le = &s
		}
		v.Hist = append(v.Hist, BucketView{LE: le, Count: cum})
	}
	return v
}

// CommView is the per-comm aggregate, for metrics.
type CommView struct {
	Comm        string
	Time        [numStates]Durations
	Transitions uint64
	Leaks       uint64
	Live        [numStates]int
}

// Comms returns the per-comm aggregates with live sockets by state.
func (t *Tracker) Comms() []CommView {
	t.mu.RLock()
	defer t.mu.RUnlock()
	idx := make(map[string]int, len(t.comms))
	out := make([]CommView, 0, len(t.comms))
	for name, c := range t.comms {
		idx[name] = len(out)
		out = append(out, CommView{Comm: name, Time: c.Time, Transitions: c.Transitions, Leaks: c.Leaks})
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

// addrString is an address as the API shows it: "" when unknown, never
// netip's "invalid IP".
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
