package output

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

type discardLevel struct{ n int }

func (d *discardLevel) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
func (d *discardLevel) WriteLevel(_ zerolog.Level, p []byte) (int, error) {
	d.n += len(p)
	return len(p), nil
}

// BenchmarkJSONWrite is the encoder alone: one state event to a writer
// that keeps nothing.
func BenchmarkJSONWrite(b *testing.B) {
	var c events.Comm
	copy(c[:], "tcpchurn")
	ev := events.Event{Cookie: 123456789, Pid: 4242, Comm: c, Owner: events.OwnerConnect, CPUPid: 4243, CPUComm: c,
		Family: events.IPv4, Saddr: netip.MustParseAddr("127.3.4.5"), Daddr: netip.MustParseAddr("127.0.0.1"),
		Sport: 40000, Dport: 21212, Old: events.FinWait1, New: events.FinWait2, Netns: 4026531840}
	r := &tracker.Report{Kind: tracker.ReportState, Ev: &ev, Mono: 1_700_000_000_123_456_789,
		Dur: 1500 * time.Microsecond, HasDur: true, FD: -1, Source: tracker.SourceTracepoint}
	var w discardLevel
	j := NewJSON(&w, func(ns uint64) time.Time { return time.Unix(0, int64(ns)) })
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.Mono += 1000
		j.Write(r)
	}
	b.SetBytes(int64(w.n / b.N))
}
