// Package output renders reports: one JSON object per line for pipelines,
// or an aligned line for people.
package output

import (
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// Field names of the event stream. They are a contract with pipelines:
// docs/events.md documents each; never rename one.
const (
	FieldEvent     = "event"
	FieldTime      = "time"
	FieldCookie    = "cookie"
	FieldPid       = "pid"
	FieldComm      = "comm"
	FieldOwner     = "owner"
	FieldFD        = "fd"
	FieldFamily    = "family"
	FieldSaddr     = "saddr"
	FieldSport     = "sport"
	FieldDaddr     = "daddr"
	FieldDport     = "dport"
	FieldOld       = "old"
	FieldNew       = "new"
	FieldDurMs     = "dur_ms"
	FieldSource    = "source"
	FieldReason    = "reason"
	FieldCPUPid    = "cpu_pid"
	FieldCPUComm   = "cpu_comm"
	FieldNetns     = "netns"
	FieldState     = "state"
	FieldAgeS      = "age_s"
	FieldAgeLB     = "age_is_lower_bound"
	FieldCount     = "count"
	FieldPortRange = "port_range"
	FieldShare     = "share"
)

// Severity by event kind: findings are warnings, transitions are info.
func level(k tracker.ReportKind) zerolog.Level {
	switch k {
	case tracker.ReportCloseWaitLeak, tracker.ReportStuck, tracker.ReportTimeWaitPressure:
		return zerolog.WarnLevel
	}
	return zerolog.InfoLevel
}

// JSON writes reports as JSON lines through zerolog; it allocates nothing
// per event in steady state.
type JSON struct {
	log  zerolog.Logger
	wall func(uint64) time.Time
	addr [64]byte
	num  [32]byte
	ts   timeFormatter
}

// quoted holds JSON string literals of names known to need no escaping,
// written raw: escaping them again on every event was most of the cost.
type quoted [256][]byte

func quote(n int, name func(int) string) *quoted {
	var q quoted
	for i := 0; i < n && i < len(q); i++ {
		q[i] = []byte(`"` + name(i) + `"`)
	}
	return &q
}

var (
	stateJSON  = quote(256, func(i int) string { return events.State(i).String() })
	kindJSON   = quote(8, func(i int) string { return tracker.ReportKind(i).String() })
	ownerJSON  = quote(8, func(i int) string { return events.OwnerSource(i).String() })
	sourceJSON = quote(8, func(i int) string { return tracker.Source(i).String() })
	familyJSON = quote(8, func(i int) string { return events.Family(i).String() })
)

// addrJSON renders an address as a JSON string; addresses need no escaping.
func (j *JSON) addrJSON(a netip.Addr) []byte {
	b := append(j.addr[:0], '"')
	b = a.AppendTo(b)
	return append(b, '"')
}

// NewJSON writes to w (usually a sink fan-out). wall converts kernel
// timestamps.
func NewJSON(w zerolog.LevelWriter, wall func(uint64) time.Time) *JSON {
	return &JSON{log: zerolog.New(w), wall: wall}
}

// Write renders one report.
func (j *JSON) Write(r *tracker.Report) {
	ev := r.Ev
	e := j.log.WithLevel(level(r.Kind))
	e.RawJSON(FieldEvent, kindJSON[r.Kind]).
		RawJSON(FieldTime, j.ts.format(j.wall(r.Mono)))
	if r.Kind == tracker.ReportTimeWaitPressure {
		// About a process and a peer, not one socket.
		e.Uint32(FieldPid, ev.Pid).Bytes(FieldComm, ev.Comm.Bytes()).
			RawJSON(FieldFamily, familyJSON[ev.Family]).
			RawJSON(FieldDaddr, j.addrJSON(ev.Daddr)).Uint16(FieldDport, ev.Dport).
			Int(FieldCount, r.Count).Int(FieldPortRange, r.PortRange).
			Float64(FieldShare, float64(r.Count)/float64(r.PortRange))
		e.Send()
		return
	}
	e.Uint64(FieldCookie, ev.Cookie).
		Uint32(FieldPid, ev.Pid).
		Bytes(FieldComm, ev.Comm.Bytes()).
		RawJSON(FieldOwner, ownerJSON[ev.Owner])
	if r.FD >= 0 {
		e.Int32(FieldFD, r.FD)
	}
	e.RawJSON(FieldFamily, familyJSON[ev.Family])
	if ev.Saddr.IsValid() {
		e.RawJSON(FieldSaddr, j.addrJSON(ev.Saddr))
	}
	e.Uint16(FieldSport, ev.Sport)
	if ev.Daddr.IsValid() {
		e.RawJSON(FieldDaddr, j.addrJSON(ev.Daddr))
	}
	e.Uint16(FieldDport, ev.Dport)
	switch r.Kind {
	case tracker.ReportState:
		e.RawJSON(FieldOld, stateJSON[ev.Old]).RawJSON(FieldNew, stateJSON[ev.New])
		if r.HasDur {
			e.RawJSON(FieldDurMs, appendMillis(j.num[:0], r.Dur))
		}
		e.RawJSON(FieldSource, sourceJSON[r.Source])
		if r.Reason != "" {
			e.Str(FieldReason, r.Reason)
		}
		e.Uint32(FieldCPUPid, ev.CPUPid).Bytes(FieldCPUComm, ev.CPUComm.Bytes())
	case tracker.ReportCloseWaitLeak, tracker.ReportCloseWaitResolved, tracker.ReportStuck:
		e.RawJSON(FieldState, stateJSON[r.State]).
			Float64(FieldAgeS, r.Age.Seconds()).
			Bool(FieldAgeLB, r.AgeLowerBound)
	}
	e.Uint32(FieldNetns, ev.Netns)
	e.Send()
}
