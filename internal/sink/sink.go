// Package sink delivers encoded events (one JSON line each) to log
// pipelines: stdout/stderr, files, TCP, TLS and unix streams, and syslog
// (over TLS too).
//
// Every sink owns a bounded queue and a goroutine that drains it, so the
// ring-buffer reader that calls Write never waits on I/O: Write copies the
// event into a preallocated slot and returns. A full queue drops the event
// and counts it; a slow or broken sink never holds up the others.
package sink

import (
	"errors"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// Sink is one destination for events.
type Sink interface {
	// Write and WriteLevel copy p into the sink's queue and return at once.
	// A full queue drops the event (counted in Stats.Dropped) without error.
	zerolog.LevelWriter
	// Name is the URL the sink was opened with.
	Name() string
	Stats() Stats
	// Reopen makes a file sink reopen its path (for logrotate's
	// move-then-SIGHUP); it is a no-op for the other kinds.
	Reopen() error
	// Flush wakes the sink's drainer for what was written since the last
	// Flush; only sinks opened with Options.DeferWake need it.
	Flush()
	// Close delivers what is queued, bounded by Options.CloseTimeout, then
	// stops the sink. Events still queued at the deadline count as dropped.
	Close() error
}

// Stats is a snapshot of a sink's counters; they feed the daemon's metrics.
type Stats struct {
	Name       string
	Queued     int // events waiting in the queue now
	Capacity   int // queue length
	Written    uint64
	Dropped    uint64 // queue full, sink closed, or undeliverable at Close
	Errors     uint64 // failed opens, dials and writes
	Reconnects uint64 // successful reconnections after a loss
	Truncated  uint64 // syslog datagrams cut to fit the size limit
	Connected  bool
	// Failing: the last open or write failed and nothing was delivered
	// since (a full disk, a collector away); LastError says why.
	Failing   bool
	LastError string
}

// Options tunes a sink. Zero values take the defaults below.
type Options struct {
	QueueLen int            // events; default 4096
	Logger   zerolog.Logger // the sink's own warnings, rate-limited; zero value discards
	FileMode os.FileMode    // mode of files the sink creates; default 0640
	// FileCache is how much of the end of a file sink's file may stay in
	// the page cache; older pages are dropped once written back. Negative:
	// the sink leaves the page cache alone. 0: DefaultFileCache.
	FileCache    int64
	DialTimeout  time.Duration // default 5s
	MaxBackoff   time.Duration // cap of the reconnect backoff; default 30s
	WriteTimeout time.Duration // deadline of one network write; default 10s
	CloseTimeout time.Duration // how long Close keeps delivering; default 5s
	// DeferWake: a write into an empty queue does not wake the drainer;
	// Flush does. For a writer that writes in bursts (the daemon, one
	// burst per read of the ring buffer): the drainer then wakes once per
	// burst and finds all of it, instead of racing the writer for the
	// queue's lock event by event and writing a few events at a time.
	DeferWake bool
}

// Defaults and bounds of Options.
const (
	DefaultQueueLen     = 4096
	MaxQueueLen         = 1 << 20
	DefaultFileMode     = os.FileMode(0o640)
	DefaultFileCache    = 64 << 20
	DefaultDialTimeout  = 5 * time.Second
	DefaultMaxBackoff   = 30 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultCloseTimeout = 5 * time.Second
)

// ErrClosed is returned by Write and Reopen on a closed sink.
var ErrClosed = errors.New("sink: closed")

func (o Options) withDefaults() Options {
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.QueueLen > MaxQueueLen {
		o.QueueLen = MaxQueueLen
	}
	o.FileMode = o.FileMode.Perm()
	if o.FileMode == 0 {
		o.FileMode = DefaultFileMode
	}
	if o.FileCache == 0 {
		o.FileCache = DefaultFileCache
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	return o
}
