// Package api holds the HTTP API's views of the tracker's tables: the JSON
// the daemon serves and its clients (sockets, top) read, built from the
// tracker's rows.
package api

import (
	"net/netip"
	"sort"
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// Socket is one socket as the API shows it.
type Socket struct {
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

// Sockets shows rows read at now (CLOCK_MONOTONIC ns); wall converts the
// kernel's times.
func Sockets(rows []tracker.Socket, now uint64, wall func(uint64) time.Time) []Socket {
	out := make([]Socket, 0, len(rows))
	for i := range rows {
		s := &rows[i]
		v := Socket{
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
	return out
}

// StateTime is time spent in one state.
type StateTime struct {
	Count  uint64   `json:"count"`
	TotalS float64  `json:"total_s"`
	MaxS   float64  `json:"max_s"`
	MeanS  float64  `json:"mean_s"`
	Hist   []Bucket `json:"buckets"`
}

// Bucket is one cumulative histogram bucket: stays of at most LE seconds
// (Prometheus' le); the last bucket, every stay, has LE null.
type Bucket struct {
	LE    *float64 `json:"le_s"`
	Count uint64   `json:"count"`
}

// Process is one process as the API shows it.
type Process struct {
	Pid            uint32               `json:"pid"`
	Comm           string               `json:"comm"`
	Sockets        map[string]int       `json:"sockets"`
	CloseWaitLeaks int                  `json:"close_wait_leaking"`
	LeaksTotal     int                  `json:"close_wait_leaks_total"`
	TimeWait       int                  `json:"time_wait"`
	CloseWait      int                  `json:"close_wait"`
	Time           map[string]StateTime `json:"time_in_state"`
	TrackedS       float64              `json:"tracked_s"` // since the pid was first seen owning a socket
}

// Processes shows the tracker's processes read at now, worst CLOSE_WAIT
// leakers first, then by TIME_WAIT held.
func Processes(procs []tracker.Process, now uint64) []Process {
	out := make([]Process, 0, len(procs))
	for i := range procs {
		p := &procs[i]
		v := Process{
			Pid: p.Pid, Comm: p.Comm.String(), Sockets: map[string]int{},
			TrackedS:       float64(now-min(p.FirstSeen, now)) / 1e9,
			CloseWaitLeaks: p.Leaking, LeaksTotal: p.Leaks,
			TimeWait: p.Live[events.TimeWait], CloseWait: p.Live[events.CloseWait],
			Time: map[string]StateTime{},
		}
		for st, n := range p.Live {
			if n > 0 {
				v.Sockets[events.State(st).String()] = n
			}
		}
		for st := range p.Time {
			if d := &p.Time[st]; d.Count > 0 {
				v.Time[events.State(st).String()] = stateTime(d)
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

func stateTime(d *tracker.Durations) StateTime {
	v := StateTime{Count: d.Count, TotalS: d.Total.Seconds(), MaxS: d.Max.Seconds(), MeanS: d.Mean().Seconds()}
	var cum uint64
	for i, n := range d.Hist {
		cum += n
		var le *float64
		if i < len(tracker.Buckets) {
			s := tracker.Buckets[i].Seconds()
			le = &s
		}
		v.Hist = append(v.Hist, Bucket{LE: le, Count: cum})
	}
	return v
}

// addrString is an address as the API shows it: "" when unknown, never
// netip's "invalid IP".
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Peer is the connections with one peer, as the API shows them: what
// their summaries add up to since the daemon started.
type Peer struct {
	Peer        string            `json:"peer"` // a client's server address:port, a server's client address
	Connections uint64            `json:"connections"`
	Ends        map[string]uint64 `json:"ends"`      // by the connection event's end
	Connect     Latency           `json:"connect"`   // as a client: SYN_SENT -> ESTABLISHED
	Handshake   Latency           `json:"handshake"` // as a server: SYN-ACK to ACK
	Life        Latency           `json:"life"`
}

// Latency is the count, mean and maximum of one kind of duration.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func latency(d *tracker.Durations) Latency {
	return Latency{Count: d.Count, MeanMs: ms(d.Mean()), MaxMs: ms(d.Max)}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Peers shows the per-peer aggregates, slowest first: by the larger of
// the mean connect and the mean handshake.
func Peers(views []tracker.PeerView) []Peer {
	out := make([]Peer, 0, len(views))
	for i := range views {
		v := &views[i]
		p := Peer{Peer: v.Peer, Ends: v.Ends, Connect: latency(&v.Connect), Handshake: latency(&v.Handshake), Life: latency(&v.Life)}
		for _, n := range v.Ends {
			p.Connections += n
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Slowness() > out[j].Slowness() })
	return out
}

// Slowness is what the peers are ordered by.
func (p *Peer) Slowness() float64 { return max(p.Connect.MeanMs, p.Handshake.MeanMs) }
