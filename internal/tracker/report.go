package tracker

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
)

// ReportKind is the `event` field of the stream.
type ReportKind uint8

const (
	ReportState ReportKind = iota + 1
	ReportCloseWaitLeak
	ReportCloseWaitResolved
	ReportStuck
	ReportTimeWaitPressure
	ReportConnection
	ReportReset
)

var reportNames = [...]string{
	ReportState:             "state",
	ReportCloseWaitLeak:     "close_wait_leak",
	ReportCloseWaitResolved: "close_wait_resolved",
	ReportStuck:             "stuck",
	ReportTimeWaitPressure:  "time_wait_pressure",
	ReportConnection:        "connection",
	ReportReset:             "reset",
}

func (k ReportKind) String() string {
	if int(k) < len(reportNames) && reportNames[k] != "" {
		return reportNames[k]
	}
	return "unknown"
}

// Source says where a state change was seen.
type Source uint8

const (
	// SourceTracepoint: sock:inet_sock_set_state, exact.
	SourceTracepoint Source = iota + 1
	// SourceTimeWaitTimer: the timewait socket's timer tracepoints, exact.
	SourceTimeWaitTimer
	// SourceTimeWaitExpiry: the FIN that switched a timewait socket to
	// TIME_WAIT re-armed its timer silently; the time is read back from
	// the timer's expiry, to one jiffy (1-10 ms).
	SourceTimeWaitExpiry
	// SourceInferred: no program ran for the change (the kernel made it
	// without running one); the kernel's socket table, asked before a
	// finding, shows the socket has left the state. The time is when it
	// was found out, not when it happened.
	SourceInferred
)

func (s Source) String() string {
	switch s {
	case SourceTracepoint:
		return "tracepoint"
	case SourceTimeWaitTimer:
		return "timewait_timer"
	case SourceTimeWaitExpiry:
		return "timewait_expiry"
	case SourceInferred:
		return "inferred"
	}
	return "unknown"
}

// Reasons a timewait socket ended.
const (
	ReasonExpired         = "expired"           // TIME_WAIT ran its 60 s
	ReasonFinWait2Timeout = "fin_wait2_timeout" // orphaned FIN_WAIT2 gave up
	// ReasonEndedEarly: killed before its timer (reuse by a new
	// connection, RST, SYN, ss -K, netns teardown); the kernel does not
	// tell which.
	ReasonEndedEarly = "ended_early"
)

// Report is one event of the output stream. Ev is the tracker's copy of
// the record it came from, with what the table knew filled in (owner,
// addresses, when the old state began); it is only valid during emit.
type Report struct {
	Kind   ReportKind
	Ev     *events.Event
	Mono   uint64 // when, CLOCK_MONOTONIC ns
	Dur    time.Duration
	HasDur bool // Dur is known: tracing saw Old begin
	FD     int32
	Source Source
	Reason string

	// close_wait_leak, close_wait_resolved, stuck
	Age           time.Duration
	AgeLowerBound bool
	State         events.State

	// time_wait_pressure
	Peer      netip.AddrPort
	Count     int
	PortRange int

	// connection
	Conn *Connection

	// reset: ResetSent or ResetReceived; State is the socket's
	Reset string
}

// Class groups report kinds for the stream's selection (--events).
type Class uint8

const (
	ClassTransitions Class = 1 << iota // state
	ClassConnections                   // connection
	ClassFindings                      // close_wait_leak, close_wait_resolved, stuck, time_wait_pressure
	ClassResets                        // reset
	ClassAll         = ClassTransitions | ClassConnections | ClassFindings | ClassResets
)

var classNames = []struct {
	name  string
	class Class
}{{"transitions", ClassTransitions}, {"connections", ClassConnections}, {"findings", ClassFindings},
	{"resets", ClassResets}, {"all", ClassAll}}

// Class is the class k belongs to.
func (k ReportKind) Class() Class {
	switch k {
	case ReportState:
		return ClassTransitions
	case ReportConnection:
		return ClassConnections
	case ReportReset:
		return ClassResets
	}
	return ClassFindings
}

// ParseClasses reads a comma-separated list of class names.
func ParseClasses(v string) (Class, error) {
	var c Class
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, n := range classNames {
			if n.name == name {
				c, found = c|n.class, true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown event class %q (one of transitions, connections, findings, resets, all)", name)
		}
	}
	return c, nil
}

func (c Class) String() string {
	var names []string
	for _, n := range classNames[:len(classNames)-1] {
		if c&n.class != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}
