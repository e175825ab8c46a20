package daemon

import (
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/tcpstated/tcpstated/internal/buildinfo"
	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/metrics"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// writeMetrics renders the Prometheus text format (see docs/metrics.md).
func (d *Daemon) writeMetrics(w io.Writer) {
	s := d.metricsSnapshot()
	metrics.Render(w, &s) // an error is the scraper hanging up
}

// metricsSnapshot gathers what one scrape shows. Label values are bounded:
// comm by the tracker's --max-comms, never pid, port or address.
func (d *Daemon) metricsSnapshot() metrics.Snapshot {
	st := d.status()
	cfg := d.trk.Config()
	t := &st.Table
	s := metrics.Snapshot{
		Build:         buildInfo(),
		StartTime:     d.started,
		RecordsRead:   st.Records,
		EventsWritten: st.Events,
		DecodeErrors:  st.DecodeErrors,
		Kernel:        st.Kernel,
		Table: metrics.Table{
			Entries: t.Sockets, Capacity: t.SocketsMax, Full: t.TableFull,
			ProcessesEvicted: t.ProcessesEvicted, CommOverflow: t.CommsOverflow,
			CommLimit: cfg.MaxComms, UnknownTimeWaitEnds: t.UnknownTimeWaitEnds,
			Inferred: t.Inferred, Duplicates: t.Duplicates, AcceptUnnamed: t.AcceptUnnamed,
			SettleErrors: st.SettleErrors, PeerLimit: cfg.MaxPeers, PeerOverflow: t.PeersOverflow,
		},
		Connections: cfg.Connections,
		Resets: metrics.Resets{On: d.tracer.Enabled(events.FeatureResets),
			Sent: t.ResetsSent, Received: t.ResetsReceived},
		Bounds: bucketBounds,
	}
	for _, f := range d.tracer.Features() {
		s.Features = append(s.Features, metrics.Feature{Name: string(f.Name), On: f.On()})
	}
	if d.tracer.Enabled(events.FeatureSnapshot) {
		s.NetnsSnapshot = &metrics.NetnsSnapshot{Walked: d.snap.Walked, Missed: d.snap.Missed}
	}

	trans := d.trk.Transitions()
	for o := range trans {
		for n, cnt := range trans[o] {
			if cnt > 0 {
				s.Transitions = append(s.Transitions, metrics.Transition{
					Old: events.State(o).String(), New: events.State(n).String(), Count: cnt,
				})
			}
		}
	}

	views := d.trk.Comms()
	s.Comms = make([]metrics.Comm, 0, len(views)+1)
	idx := make(map[string]int, len(views)+1)
	for i := range views {
		v := &views[i]
		c := metrics.Comm{Name: v.Comm, Transitions: v.Transitions, LeaksTotal: v.Leaks, Conn: connMetrics(&v.Conn)}
		for state, n := range v.Live {
			if n > 0 {
				c.Sockets = append(c.Sockets, metrics.StateCount{State: events.State(state).String(), N: n})
			}
		}
		for state := range v.Time {
			if h := &v.Time[state]; h.Count > 0 {
				c.Time = append(c.Time, metrics.StateTime{
					State: events.State(state).String(), Sum: h.Total.Seconds(),
					Buckets: h.Hist[:min(len(tracker.Buckets)+1, len(h.Hist))],
				})
			}
		}
		idx[v.Comm] = len(s.Comms)
		s.Comms = append(s.Comms, c)
	}

	for _, p := range d.trk.Peers() {
		s.Peers = append(s.Peers, metrics.Peer{Name: p.Peer, Conn: connMetrics(&p.ConnStats)})
	}

	// CLOSE_WAIT sockets past the threshold now, under the same bounded
	// comm labels as the rest.
	rows, _ := d.trk.Sockets(tracker.Query{States: []events.State{events.CloseWait}})
	for _, row := range rows {
		if !row.Leaked {
			continue
		}
		comm := row.Comm.String()
		i, ok := idx[comm]
		if !ok {
			name := comm
			if len(s.Comms) >= cfg.MaxComms {
				name = tracker.OtherComm
			}
			if i, ok = idx[name]; !ok {
				i = len(s.Comms)
				idx[name] = i
				s.Comms = append(s.Comms, metrics.Comm{Name: name})
			}
		}
		s.Comms[i].Leaking++
	}

	for _, sk := range d.fanout.Sinks() {
		ss := sk.Stats()
		name := ss.Name
		if name == "" {
			name = sk.Name()
		}
		s.Sinks = append(s.Sinks, metrics.Sink{
			Name: name, Queued: ss.Queued, Capacity: ss.Capacity,
			Written: ss.Written, Dropped: ss.Dropped, Errors: ss.Errors,
			Reconnects: ss.Reconnects, Truncated: ss.Truncated, Connected: ss.Connected,
		})
	}
	return s
}

// connMetrics is a comm's or a peer's connection aggregate for metrics.
func connMetrics(c *tracker.ConnStats) metrics.Conn {
	dist := func(d *tracker.Durations) metrics.StateTime {
		return metrics.StateTime{Sum: d.Total.Seconds(), Buckets: d.Hist[:min(len(tracker.Buckets)+1, len(d.Hist))]}
	}
	m := metrics.Conn{Connect: dist(&c.Connect), Handshake: dist(&c.Handshake), Life: dist(&c.Life)}
	for end, n := range c.Ends {
		m.Ends = append(m.Ends, metrics.EndCount{End: end, N: n})
	}
	slices.SortFunc(m.Ends, func(a, b metrics.EndCount) int { return strings.Compare(a.End, b.End) })
	return m
}

// bucketBounds are tracker.Buckets in seconds.
var bucketBounds = func() []float64 {
	b := make([]float64, len(tracker.Buckets))
	for i, d := range tracker.Buckets {
		b[i] = d.Seconds()
	}
	return b
}()

var buildInfo = sync.OnceValue(func() metrics.Build {
	b := metrics.Build{Version: buildinfo.Version(), Commit: buildinfo.Commit(), GoVersion: runtime.Version(), Kernel: "unknown"}
	if rel, _, _, _ := events.KernelVersion(); rel != "" {
		b.Kernel = rel
	}
	return b
})
