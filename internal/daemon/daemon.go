// Package daemon wires the stages: kernel -> ring buffer -> decode ->
// track -> sinks, plus the HTTP API and the periodic work.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/sink"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// Options are the daemon's settings, from flags.
type Options struct {
	Format string   // json or text
	Sinks  []string // sink URLs
	Filter events.Filter
	// Events: the classes of events streamed (--events); 0 for all that
	// the filters allow.
	Events    tracker.Class
	ReadyFile string
	Listen    string // "" disables the network listener
	// WebConfigFile secures Listen: the exporter toolkit's TLS and basic
	// auth file.
	WebConfigFile string
	ListenAPI     bool // serve /api/v1 on Listen too, not only metrics
	// AllowUnauthenticated lets Listen serve beyond loopback (or the API on
	// loopback) without TLS and authentication.
	AllowUnauthenticated bool
	APISocket            string // unix socket serving everything; "" for none
	APISocketIsDefault   bool   // one that cannot be made is a warning, not an error
	APIGroup             string // group that sees everything on APISocket
	APIGroupIsDefault    bool   // a missing APIGroup is not an error

	RingBytes   int
	MaxTimeWait int
	Disabled    []events.Feature // features not to load
	// StreamPreexistingEnds streams the ends of TIME_WAITs found by the
	// start-up snapshot; by default their rows end without an event.
	StreamPreexistingEnds bool
	// TraceOwnAPI keeps the connections to the daemon's own HTTP API
	// (scrapes, tcpstated sockets and top) in the stream.
	TraceOwnAPI  bool
	QueueLen     int
	FileCache    int64         // sink.Options.FileCache
	PollInterval time.Duration // ring buffer and timewait poll
	ScanInterval time.Duration // file tables walk
	Tracker      tracker.Config

	Log zerolog.Logger
}

// Status is every counter the daemon keeps or reads, gathered at one
// moment: the stop log, /healthz and /metrics are views of it.
type Status struct {
	Events       uint64 // reports written
	Transitions  uint64 // the state events among them
	Records      uint64 // ring-buffer records read
	DecodeErrors uint64
	SettleErrors uint64           // failures to ask sock_diag (settle.go)
	Kernel       *events.Counters // nil when the counters map cannot be read
	Table        tracker.Stats
	SinkDropped  uint64 // summed over the sinks
}

// Daemon is one running tracer.
type Daemon struct {
	opt     Options
	log     zerolog.Logger
	tracer  *events.Tracer
	trk     *tracker.Tracker
	clock   *events.Clock
	fanout  *sink.Fanout
	write   func(*tracker.Report)
	emitted atomic.Uint64
	// transitions: the state events among emitted
	transitions atomic.Uint64
	records     atomic.Uint64
	badRecs     atomic.Uint64
	// settleErrs counts failures to ask sock_diag (settle.go).
	settleErrs atomic.Uint64
	lost       uint64 // last logged value of the kernel's lost counter
	full       uint64 // last logged sum of the kernel's table-full counters
	skipped    uint64 // last logged count of programs the kernel skipped
	unseen     uint64 // last logged count of sockets the table had no room for

	snap     SnapshotCoverage
	scanMu   sync.Mutex
	lastScan time.Time
	servers  []*http.Server
	queries  chan struct{} // socket table queries running (maxQueries)
	addr     string        // the network listener's address
	sockPath string        // the API socket's path
	apiGroup int           // gid that sees everything on the API socket, or -1
	web      webSecurity
	// The API's address and network namespace, to leave its own traffic
	// out of the stream; set before Run reads the ring buffer.
	apiAddr  netip.AddrPort
	apiNetns uint32
	started  time.Time
}

// Open loads the tracer, takes the start-up snapshot and opens sinks.
// Nothing is written until Run.
func Open(opt Options) (*Daemon, error) {
	// A summary needs every change of its socket; --state drops some in
	// the kernel.
	if opt.Events == 0 {
		opt.Events = tracker.ClassAll
		if len(opt.Filter.States) > 0 {
			opt.Events &^= tracker.ClassConnections
			opt.Log.Warn().Msg("connection events are off: --state drops in the kernel transitions that a connection's summary needs")
		}
	} else if opt.Events&tracker.ClassConnections != 0 && len(opt.Filter.States) > 0 {
		return nil, errors.New("--events connections cannot be combined with --state: the kernel drops transitions that a connection's summary needs")
	}
	opt.Tracker.Connections = opt.Events&tracker.ClassConnections != 0
	d := &Daemon{opt: opt, log: opt.Log, clock: events.NewClock(), started: time.Now(), queries: make(chan struct{}, maxQueries)}
	// Who may see what is settled before anything is loaded.
	var err error
	if d.web, err = listenPolicy(opt); err != nil {
		return nil, err
	}
	if d.apiGroup, err = lookupGroup(opt.APIGroup, opt.APIGroupIsDefault); err != nil {
		return nil, err
	}
	if len(opt.Sinks) == 0 {
		opt.Sinks = []string{"stdout"}
	}
	var sinks []sink.Sink
	for _, u := range opt.Sinks {
		s, err := sink.Open(u, sink.Options{QueueLen: opt.QueueLen, FileCache: opt.FileCache, Logger: d.log, FileMode: 0o640, DeferWake: true})
		if err != nil {
			for _, o := range sinks {
				o.Close()
			}
			return nil, fmt.Errorf("--sink: %w", err)
		}
		sinks = append(sinks, s)
	}
	d.fanout = sink.NewFanout(sinks...)

	tr, err := events.Open(events.Config{
		Filter:      opt.Filter,
		RingBytes:   opt.RingBytes,
		MaxTimeWait: opt.MaxTimeWait,
		Disabled:    opt.Disabled,
	})
	if err != nil {
		d.fanout.Close()
		return nil, err
	}
	d.tracer = tr
	d.logFeatures()
	if tr.Enabled(events.FeatureTimeWait) {
		if hz, err := tr.MeasureHZ(100 * time.Millisecond); err != nil {
			d.log.Warn().Err(err).Msg("kernel tick rate unknown: FIN_WAIT2 -> TIME_WAIT switches seen late are dated when seen")
		} else {
			d.log.Debug().Uint32("hz", hz).Msg("kernel tick rate")
		}
	}

	// A record's gap from its row's state means a change no program ran
	// for, unless the kernel drops records by owner or state.
	opt.Tracker.InferGaps = opt.Filter.Pid == 0 && len(opt.Filter.States) == 0
	opt.Tracker.AwaitAccept = tr.Enabled(events.FeatureAccept)
	opt.Tracker.TimeWaitFollowed = tr.Enabled(events.FeatureTimeWait)
	d.trk = tracker.New(opt.Tracker, events.MonotonicNow)
	var out interface{ Write(*tracker.Report) }
	if opt.Format == "text" {
		out = newTextOut(d.fanout, d.clock.Wall)
	} else {
		out = newJSONOut(d.fanout, d.clock.Wall)
	}
	d.write = func(r *tracker.Report) {
		if r.Kind.Class()&d.opt.Events == 0 || quietEnd(&d.opt, r) || d.ownAPITraffic(r) {
			return
		}
		if match(&d.opt.Filter, r) {
			out.Write(r)
			d.emitted.Add(1)
			if r.Kind == tracker.ReportState {
				d.transitions.Add(1)
			}
		}
	}

	// What existed before us: sockets first, so owners attach to rows.
	d.snapshot()
	if err := d.scanFiles(true); err != nil {
		d.log.Error().Err(err).Msg("start-up file table walk failed: owners and fds come from later walks")
	}
	d.fanout.Flush()

	if err := d.serve(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// applyLocked takes one ring-buffer record, inside the tracker's Locked
// (PollBatched).
func (d *Daemon) applyLocked(ev *events.Event) {
	d.records.Add(1)
	d.trk.ApplyLocked(ev, d.write)
}

func (d *Daemon) badRecord(err error) {
	if d.badRecs.Add(1) == 1 {
		d.log.Error().Err(err).Msg("undecodable ring-buffer record (counted, further ones not logged)")
	}
}

// drainRing applies what the ring buffer holds now, without waiting: the
// start-up walks take long enough (a few ms per network namespace) for a
// busy host to fill it.
func (d *Daemon) drainRing() {
	var ev events.Event
	if err := d.tracer.PollBatched(0, &ev, d.applyLocked, d.badRecord, d.trk.Locked); err != nil {
		d.log.Warn().Err(err).Msg("reading the ring buffer during start-up")
	}
}

// Addr is where the HTTP server listens, or "".
func (d *Daemon) Addr() string { return d.addr }

// scanFiles walks every process's file table, at most once a second
// unless forced.
func (d *Daemon) scanFiles(force bool) error {
	d.scanMu.Lock()
	defer d.scanMu.Unlock()
	if !force && time.Since(d.lastScan) < time.Second {
		return nil
	}
	d.lastScan = time.Now()
	if !d.tracer.Enabled(events.FeatureFiles) {
		return nil
	}
	d.trk.BeginFileScan()
	err := d.tracer.Files(d.trk.ApplyFile)
	d.trk.EndFileScan()
	return err
}

// Run streams until ctx ends, then drains and returns the summary.
func (d *Daemon) Run(ctx context.Context) (Status, error) {
	if d.opt.ReadyFile != "" {
		ready, _ := json.Marshal(map[string]any{"pid": os.Getpid(), "listen": d.addr, "socket": d.sockPath})
		if err := writeReplacing(d.opt.ReadyFile, append(ready, '\n')); err != nil {
			return Status{}, fmt.Errorf("--ready-file: %w", err)
		}
	}
	go func() {
		<-ctx.Done()
		if err := d.tracer.Stop(); err != nil { // Poll drains what is left
			d.log.Warn().Err(err).Msg("stopping the tracer")
		}
	}()

	poll := d.opt.PollInterval
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	scanEvery := d.opt.ScanInterval
	if scanEvery <= 0 {
		scanEvery = 10 * time.Second
	}
	now := time.Now()
	var jobs schedule
	jobs.add(now, 0, poll*2, func() {
		if err := d.tracer.PollTimeWaits(); err != nil {
			d.log.Error().Err(err).Msg("timewait poll failed")
		}
	})
	scan := jobs.add(now, scanEvery, scanEvery, func() {
		if err := d.scanFiles(false); err != nil {
			d.log.Error().Err(err).Msg("file table walk failed")
		}
	})
	tick := jobs.add(now, time.Second, time.Second, func() {
		d.settleDue(false)
		d.trk.Tick(d.write)
		d.checkLoss()
	})
	// A finding about to be reported needs fresh descriptors.
	scan.early = func(now time.Time) bool { return tick.due(now) && d.trk.HasPendingFindings() }
	jobs.add(now, 10*time.Second, 10*time.Second, d.clock.Sync)

	var ev events.Event
	var runErr error
	for {
		err := d.tracer.PollBatched(poll, &ev, d.applyLocked, d.badRecord, d.trk.Locked)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			runErr = err
			break
		}
		// The sinks' drainers wake once for all this read wrote.
		d.fanout.Flush()
		jobs.runDue(time.Now())
		d.fanout.Flush() // findings of the tick
	}
	// Changes no program saw, up to the end: the kernel still has the
	// sockets; a FIN_WAIT1 row it shows elsewhere is streamed as inferred.
	d.trk.FlushAwaiting(d.write)
	d.settleDue(true)
	d.fanout.Flush()
	d.checkLoss() // what was lost since the last tick is logged, not only summed
	return d.status(), runErr
}

// checkLoss logs, at most once a second, records the kernel could not queue
// and rows the tables had no room for.
func (d *Daemon) checkLoss() {
	st := d.status()
	if t := st.Table; t.TableFull > d.unseen {
		d.log.Warn().Uint64("not_tracked", t.TableFull-d.unseen).Int("sockets", t.Sockets).
			Msg("socket table full: new sockets are streamed but not tracked (raise --max-sockets)")
		d.unseen = t.TableFull
	}
	c := st.Kernel
	if c == nil {
		return
	}
	if c.RecursionMisses > d.skipped {
		d.log.Warn().Uint64("skipped", c.RecursionMisses-d.skipped).Uint64("skipped_total", c.RecursionMisses).
			Msg("the kernel skipped the tracing program (a state change in an interrupt that interrupted it): transitions lost")
		d.skipped = c.RecursionMisses
	}
	if c.Lost > d.lost {
		d.log.Warn().Uint64("lost", c.Lost-d.lost).Uint64("lost_total", c.Lost).
			Uints64("lost_per_cpu", c.LostPerCPU).
			Msg("ring buffer full: records lost (raise --ring-size)")
		d.lost = c.Lost
	}
	if c.TimeWaitFull+c.HeldFull+c.WatchFull > d.full {
		d.full = c.TimeWaitFull + c.HeldFull + c.WatchFull
		d.log.Warn().Uint64("timewait_table_full", c.TimeWaitFull).Uint64("synrecv_held_full", c.HeldFull).
			Uint64("watch_full", c.WatchFull).
			Msg("kernel tables full: some TIME_WAIT exits or SYN_RECV entries go unseen (TIME_WAIT: raise --max-timewait)")
	}
}

func (d *Daemon) status() Status {
	s := Status{
		Events: d.emitted.Load(), Transitions: d.transitions.Load(), Records: d.records.Load(),
		DecodeErrors: d.badRecs.Load(), SettleErrors: d.settleErrs.Load(),
		Table: d.trk.Stats(),
	}
	if c, err := d.tracer.Counters(); err == nil {
		s.Kernel = &c
	} else {
		d.log.Debug().Err(err).Msg("kernel counters unreadable; left out")
	}
	for _, sk := range d.fanout.Sinks() {
		s.SinkDropped += sk.Stats().Dropped
	}
	return s
}

// Reopen reopens file sinks (SIGHUP, for logrotate).
func (d *Daemon) Reopen() error { return d.fanout.Reopen() }

// Close stops the HTTP server, flushes sinks and unloads the programs.
func (d *Daemon) Close() error {
	for _, srv := range d.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(ctx)
		cancel()
	}
	d.servers = nil
	var err error
	if d.fanout != nil {
		err = d.fanout.Close()
	}
	if d.tracer != nil {
		d.tracer.Close()
	}
	return err
}

// writeReplacing puts b at path through a new file and a rename: a symlink
// planted at path is replaced, never followed.
func writeReplacing(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
