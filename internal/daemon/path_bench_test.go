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

// BenchmarkRecordToJSON: decoded record -> tracker -> filter -> JSON ->
// file sink, per event. Steady state must not allocate (make bench checks
// allocs/op).
func BenchmarkRecordToJSON(b *testing.B) {
	s, err := sink.Open("file:/dev/null", sink.Options{QueueLen: 1 << 16, Logger: zerolog.Nop(), FileMode: 0o640})
	if err != nil {
		b.Fatal(err)
	}
	fan := sink.NewFanout(s)
	defer fan.Close()
	wall := func(ns uint64) time.Time { return time.Unix(0, int64(ns)) }
	out := output.NewJSON(fan, wall)
	var mono uint64 = 1
	trk := tracker.New(tracker.Config{}, func() uint64 { return mono })
	var filter events.Filter
	write := func(r *tracker.Report) {
		if match(&filter, r) {
			out.Write(r)
		}
	}
	// TIME_WAIT rows stay: close them as the kernel would 60 s later, so
	// the table keeps a steady size.
	end := events.Event{Kind: events.KindTimeWaitEnd, Family: events.IPv4, Old: events.TimeWait, New: events.Close,
		Flags: events.FlagExpired, Saddr: netip.IPv4Unspecified(), Daddr: netip.IPv4Unspecified()}
	batch := make([]events.Event, 0, 11)
	cookie := uint64(1)
	next := func() {
		batch = connection(batch[:0], cookie, cookie+1, mono)
		end.Cookie, end.Mono = cookie, mono+20000
		batch = append(batch, end)
		cookie += 2
		mono += 100000
	}
	for i := 0; i < 1000; i++ { // warm up tables and pools
		next()
		for j := range batch {
			trk.Apply(&batch[j], write)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		next()
		for j := 0; j < len(batch) && i < b.N; j++ {
			trk.Apply(&batch[j], write)
			i++
		}
	}
	b.StopTimer()
	if st := s.Stats(); st.Dropped > 0 {
		b.Logf("sink dropped %d of %d (queue full while benchmarking the writer side)", st.Dropped, st.Written+st.Dropped)
	}
}
