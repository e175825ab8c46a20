// Package metrics renders tcpstated's state as the Prometheus text
// exposition format, version 0.0.4, by hand: the daemon fills a plain
// Snapshot (the kernel's counters as events reads them) and Render
// writes it. There is no registry and no dependency.
//
// Label cardinality is bounded by the daemon: comm values are at most
// --max-comms distinct names plus "other", states are the kernel's dozen,
// sinks are the configured ones, cpus the possible CPUs. No pid, port or
// address is ever a label.
package metrics

import (
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
)

// ContentType is the Content-Type of what Render writes.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Snapshot is everything one scrape shows. The daemon fills it; Render
// only formats it (and merges comm values that format to the same label).
type Snapshot struct {
	Build     Build
	StartTime time.Time // when the daemon started; zero: not shown

	// Features are the tracer's parts the kernel may refuse, and whether
	// each runs (tcpstated check and /healthz say why one does not).
	Features []Feature
	// NetnsSnapshot is what the start-up snapshot covered; nil when it
	// did not run.
	NetnsSnapshot *NetnsSnapshot

	// The daemon's own counters.
	RecordsRead   uint64 // ring-buffer records read
	EventsWritten uint64 // events handed to the sinks (after filters)
	DecodeErrors  uint64 // undecodable ring-buffer records

	// Kernel is what the BPF programs counted; nil when the counters
	// could not be read (the families are then left out).
	Kernel *events.Counters

	Table Table

	// Transitions counts state changes by old and new state; zero
	// counts may be left out.
	Transitions []Transition

	// Bounds are the histogram upper bounds in seconds, ascending.
	Bounds []float64
	// Comms are the per-comm aggregates, one per label value.
	Comms []Comm
	// Peers are the per-peer connection aggregates; Connections says
	// whether connection summaries are made (else both say nothing).
	Peers       []Peer
	Connections bool
	Resets      Resets

	Sinks []Sink
}

// Build identifies the binary and the kernel it runs on.
type Build struct {
	Version, Commit, GoVersion, Kernel string
}

// Feature is one part of the tracer and whether it runs.
type Feature struct {
	Name string
	On   bool
}

// NetnsSnapshot counts the network namespaces the start-up snapshot
// walked, and those it missed (not entered, or past the limit).
type NetnsSnapshot struct{ Walked, Missed int }

// Table is the user-space socket table and its bounds.
type Table struct {
	Entries, Capacity   int
	Full                uint64 // sockets not tracked: table full
	ProcessesEvicted    uint64
	CommOverflow        uint64 // events counted under comm="other"
	CommLimit           int    // --max-comms
	UnknownTimeWaitEnds uint64 // TIME_WAIT ends of sockets not in the table
	Inferred            uint64 // changes no program saw, found in the kernel's socket table
	Duplicates          uint64 // changes reported twice by the kernel side, dropped
	AcceptUnnamed       uint64 // accepted children of an ambiguous listener streamed with no owner
	SettleErrors        uint64 // failed questions to that table
	PeerLimit           int    // --max-peers
	PeerOverflow        uint64 // connections counted under peer="other"
}

// Resets counts RSTs by direction (the resets feature).
type Resets struct {
	On             bool // the feature runs: else the counts say nothing
	Sent, Received uint64
}

// Transition is the count of one old -> new state change.
type Transition struct {
	Old, New string
	Count    uint64
}

// Comm is the aggregate of every process with one command name.
type Comm struct {
	Name        string
	Transitions uint64 // state changes counted under this comm
	LeaksTotal  uint64 // CLOSE_WAIT sockets that crossed the threshold, ever
	Leaking     int    // CLOSE_WAIT sockets past the threshold now
	Sockets     []StateCount
	Time        []StateTime
	Conn        Conn // its connections' summaries
}

// Conn is what connection summaries add up to, for one comm or one peer.
type Conn struct {
	Connect   StateTime // a client's connect latency (SYN_SENT -> ESTABLISHED)
	Handshake StateTime // a server's SYN-ACK to the client's ACK (SYN_RECV -> ESTABLISHED)
	Life      StateTime
	Ends      []EndCount // how they ended, by name
}

// EndCount is the number of connections that ended one way.
type EndCount struct {
	End string
	N   uint64
}

// Peer is the aggregate of the connections with one peer: a client's
// server (address:port) or a server's client (address).
type Peer struct {
	Name string
	Conn Conn
}

// StateCount is a number of live sockets in one state.
type StateCount struct {
	State string
	N     int
}

// StateTime is the distribution of time spent in one state by sockets
// that left it.
type StateTime struct {
	State string
	Sum   float64 // seconds
	// Buckets are per-bucket, not cumulative, counts: Buckets[i] counts
	// stays in (Bounds[i-1], Bounds[i]]; the slot after the last bound
	// counts stays longer than every bound. Render accumulates them.
	Buckets []uint64
}

// Sink is one event destination's queue and delivery counters.
type Sink struct {
	Name             string // the sink URL
	Queued, Capacity int
	Written, Dropped uint64
	Errors           uint64
	Reconnects       uint64
	Truncated        uint64
	Connected        bool
}
