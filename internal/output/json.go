// Package output renders reports: one JSON object per line for pipelines,
// or an aligned line for people.
package output

import (
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
	e.Str(FieldEvent, r.Kind.String()).
		Time(FieldTime, j.wall(r.Mono).UTC()).
		Uint64(FieldCookie, ev.Cookie).
		Uint32(FieldPid, ev.Pid).
		Bytes(FieldComm, ev.Comm.Bytes())
	if r.Kind != tracker.ReportTimeWaitPressure {
		e.Str(FieldOwner, ev.Owner.String())
		if r.FD >= 0 {
			e.Int32(FieldFD, r.FD)
		}
	}
	e.Str(FieldFamily, ev.Family.String())
	if ev.Saddr.IsValid() {
		e.Bytes(FieldSaddr, ev.Saddr.AppendTo(j.addr[:0]))
	}
	e.Uint16(FieldSport, ev.Sport)
	if ev.Daddr.IsValid() {
		e.Bytes(FieldDaddr, ev.Daddr.AppendTo(j.addr[:0]))
	}
	e.Uint16(FieldDport, ev.Dport)
	switch r.Kind {
	case tracker.ReportState:
		e.Str(FieldOld, ev.Old.String()).Str(FieldNew, ev.New.String())
		if r.HasDur {
			e.Float64(FieldDurMs, float64(r.Dur)/float64(time.Millisecond))
		}
		e.Str(FieldSource, r.Source.String())
		if r.Reason != "" {
			e.Str(FieldReason, r.Reason)
		}
		e.Uint32(FieldCPUPid, ev.CPUPid).Bytes(FieldCPUComm, ev.CPUComm.Bytes())
	case tracker.ReportCloseWaitLeak, tracker.ReportCloseWaitResolved, tracker.ReportStuck:
		e.Str(FieldState, r.State.String()).
			Float64(FieldAgeS, r.Age.Seconds()).
			Bool(FieldAgeLB, r.AgeLowerBound)
	case tracker.ReportTimeWaitPressure:
		e.Int(FieldCount, r.Count).Int(FieldPortRange, r.PortRange).
			Float64(FieldShare, float64(r.Count)/float64(r.PortRange))
	}
	e.Uint32(FieldNetns, ev.Netns)
	e.Send()
}

var _ = events.KindState
