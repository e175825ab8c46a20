package daemon

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/output"
	"github.com/tcpstated/tcpstated/internal/sink"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// connection is the 10 records of one client-closes-first connection.
func connection(dst []events.Event, client, server uint64, mono uint64) []events.Event {
	c := events.Comm{}
	copy(c[:], "tcpchurn")
	lo := netip.MustParseAddr("127.0.0.1")
	mk := func(cookie uint64, old, nw events.State, sport, dport uint16, i uint64) events.Event {
		return events.Event{Kind: events.KindState, Mono: mono + i*1000, SinceMono: mono + (i-1)*1000, Cookie: cookie,
			Pid: 4242, Comm: c, Owner: events.OwnerConnect, CPUPid: 0, CPUComm: c, Family: events.IPv4,
			Saddr: lo, Daddr: lo, Sport: sport, Dport: dport, Old: old, New: nw}
	}
	return append(dst,
		mk(client, events.Close, events.SynSent, 0, 8080, 1),
		mk(client, events.SynSent, events.Established, 40000, 8080, 2),
		mk(server, events.Listen, events.SynRecv, 8080, 40000, 3),
		mk(server, events.SynRecv, events.Established, 8080, 40000, 4),
		mk(client, events.Established, events.FinWait1, 40000, 8080, 5),
		mk(server, events.Established, events.CloseWait, 8080, 40000, 6),
		mk(client, events.FinWait1, events.FinWait2, 40000, 8080, 7),
		mk(server, events.CloseWait, events.LastAck, 8080, 40000, 8),
		mk(server, events.LastAck, events.Close, 8080, 40000, 9),
		mk(client, events.FinWait2, events.TimeWait, 40000, 8080, 10),
	)
}

// pathRig drives the daemon's path per event: decoded record -> tracker
// -> filter -> JSON -> file sink (/dev/null). Each connection's TIME_WAIT
// ends timeWaits connections later, as the kernel's would 60 s later, so
// the table holds about that many rows: at full churn ~150k, which is what
// makes its lookups miss the CPU's caches.
type pathRig struct {
	fan    *sink.Fanout
	s      sink.Sink
	trk    *tracker.Tracker
	write  func(*tracker.Report)
	mono   uint64
	cookie uint64
	batch  []events.Event
	// The last held client cookies (a ring, next at n%held): each one's
	// TIME_WAIT ends when its slot is taken again.
	ends []uint64
	n    int
	held int
}

func newPathRig(tb testing.TB, timeWaits int) *pathRig {
	s, err := sink.Open("file:/dev/null", sink.Options{QueueLen: 1 << 16, Logger: zerolog.Nop(), FileMode: 0o640})
	if err != nil {
		tb.Fatal(err)
	}
	r := &pathRig{s: s, fan: sink.NewFanout(s), mono: 1, cookie: 1, held: timeWaits,
		batch: make([]events.Event, 0, 11), ends: make([]uint64, timeWaits)}
	wall := func(ns uint64) time.Time { return time.Unix(0, int64(ns)) }
	out := output.NewJSON(r.fan, wall)
	r.trk = tracker.New(tracker.Config{}, func() uint64 { return r.mono })
	var filter events.Filter
	r.write = func(rep *tracker.Report) {
		if match(&filter, rep) {
			out.Write(rep)
		}
	}
	for i := 0; i < timeWaits+1000; i++ { // fill the table, warm pools
		r.connection()
	}
	return r
}

// connection applies the next connection's records and ends the oldest
// TIME_WAIT held: 10 or 11 events.
func (r *pathRig) connection() int {
	r.batch = connection(r.batch[:0], r.cookie, r.cookie+1, r.mono)
	ended := r.cookie
	if r.held > 0 {
		ended, r.ends[r.n%r.held] = r.ends[r.n%r.held], r.cookie
		r.n++
	}
	if ended != 0 {
		r.batch = append(r.batch, events.Event{Kind: events.KindTimeWaitEnd, Family: events.IPv4,
			Old: events.TimeWait, New: events.Close, Flags: events.FlagExpired,
			Saddr: netip.IPv4Unspecified(), Daddr: netip.IPv4Unspecified(), Cookie: ended, Mono: r.mono + 20000})
	}
	r.cookie += 2
	r.mono += 100000
	for j := range r.batch {
		r.trk.Apply(&r.batch[j], r.write)
	}
	return len(r.batch)
}

func (r *pathRig) close() { r.fan.Close() }

// BenchmarkRecordToJSON: per event, with a table of a few rows and with
// one of a busy host's size.
func BenchmarkRecordToJSON(b *testing.B) {
	for _, tc := range []struct {
		name      string
		timeWaits int
	}{{"table=small", 0}, {"table=150k", 150000}} {
		b.Run(tc.name, func(b *testing.B) {
			r := newPathRig(b, tc.timeWaits)
			defer r.close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				i += r.connection()
			}
			b.StopTimer()
			if st := r.s.Stats(); st.Dropped > 0 {
				b.Logf("sink dropped %d of %d (queue full while benchmarking the writer side)", st.Dropped, st.Written+st.Dropped)
			}
		})
	}
}

// TestRecordToJSONAllocatesNothing: the steady state of the path makes no
// garbage per event.
func TestRecordToJSONAllocatesNothing(t *testing.T) {
	r := newPathRig(t, 1000)
	defer r.close()
	if n := testing.AllocsPerRun(2000, func() { r.connection() }); n != 0 {
		t.Fatalf("%.2f allocations per connection (10-11 events), want 0", n)
	}
}
