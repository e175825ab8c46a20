package events

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tcpstated/tcpstated/internal/netns"
)

// Filter selects transitions in the kernel; zero values select all.
type Filter struct {
	Pid    uint32  // owning process
	Port   uint16  // either end
	Family Family  // 0: both
	States []State // either side of the transition
}

// Config sizes and tunes the tracer.
type Config struct {
	Filter Filter
	// RingBytes is the ring buffer size: a power of two, a multiple of
	// the page size.
	RingBytes int
	// MaxTimeWait bounds the table of timewait sockets followed in the
	// kernel; past it, TIME_WAIT exits go unseen (counted).
	MaxTimeWait int
	// WakeupBytes: the kernel wakes the reader once this much is queued;
	// below it the reader finds records on its own poll interval.
	WakeupBytes int
	// Kallsyms is read for tw_timer_handler; empty means /proc/kallsyms.
	Kallsyms string
	// Disabled features are not loaded (the core cannot be disabled).
	Disabled []Feature
}

// Tracer owns the loaded programs, their links and the ring-buffer reader.
type Tracer struct {
	maps     tcpstatedMaps
	vars     tcpstatedVariables
	loaded   *loadedObjects
	links    []link.Link
	iters    map[string]*link.Iter // attached iterators, opened per walk
	ring     *ring
	features []FeatureStatus
	// stopping: the programs are detached; Poll drains what is left and
	// ends.
	stopping atomic.Bool
	stopOnce sync.Once
	stopErr  error
	readMu   sync.Mutex // held by Poll; Close takes it before unmapping
	hz       uint32
	closed   atomic.Bool
	linksMu  sync.Mutex
	itersMu  sync.RWMutex // walks read iters; Close empties it
	pollMu   sync.Mutex   // one timewait poll at a time
}

// Features says which features run, and why the others do not.
func (t *Tracer) Features() []FeatureStatus { return t.features }

// Enabled says whether a feature runs.
func (t *Tracer) Enabled(f Feature) bool {
	for _, st := range t.features {
		if st.Name == f {
			return st.On()
		}
	}
	return false
}

// HZ is the kernel's tick rate, as measured at start.
func (t *Tracer) HZ() uint32 { return t.hz }

// Defaults of Config.
const (
	DefaultRingBytes   = 8 << 20
	DefaultMaxTimeWait = 131072
)

// Open checks the system, loads the core and every feature the kernel
// allows, and attaches them. It fails only when the core cannot run.
func Open(cfg Config) (*Tracer, error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	if cfg.RingBytes <= 0 {
		cfg.RingBytes = DefaultRingBytes
	}
	if cfg.MaxTimeWait <= 0 {
		cfg.MaxTimeWait = DefaultMaxTimeWait
	}
	if cfg.WakeupBytes <= 0 {
		// Small enough that one burst fits a sink's queue (~1900
		// records for 8 MiB), large enough to wake the reader rarely.
		cfg.WakeupBytes = cfg.RingBytes / 32
	}
	if cfg.Kallsyms == "" {
		cfg.Kallsyms = "/proc/kallsyms"
	}
	disabled := map[Feature]bool{}
	for _, f := range cfg.Disabled {
		if f == FeatureCore {
			return nil, errors.New("the core cannot be disabled")
		}
		disabled[f] = true
	}
	spec, err := loadTcpstated()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded BPF object: %w", err)
	}
	var twFn uint64
	var twErr error
	if !disabled[FeatureTimeWait] {
		twFn, twErr = timerHandler(cfg.Kallsyms)
	}
	var states uint32
	for _, s := range cfg.Filter.States {
		states |= 1 << s
	}
	set := map[string]any{
		tcpstatedVarFilterPid:    cfg.Filter.Pid,
		tcpstatedVarFilterPort:   cfg.Filter.Port,
		tcpstatedVarFilterFamily: uint8(cfg.Filter.Family),
		tcpstatedVarFilterStates: states,
		tcpstatedVarTwTimerFn:    twFn,
		tcpstatedVarWakeupBytes:  uint64(cfg.WakeupBytes),
		// Half the table at most for TIME_WAITs from before tracing.
		tcpstatedVarMaxPreexistingTw: uint32(cfg.MaxTimeWait / 2),
	}
	for name, v := range set {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("setting %s: %w", name, err)
		}
	}
	spec.Maps[tcpstatedMapEvents].MaxEntries = uint32(cfg.RingBytes)
	spec.Maps[tcpstatedMapTimewaits].MaxEntries = uint32(cfg.MaxTimeWait)
	spec.Maps[tcpstatedMapTwWatch].MaxEntries = uint32(max(cfg.MaxTimeWait/2, 1024))
	if adjustSpec != nil {
		adjustSpec(spec)
	}

	loaded, err := loadAll(spec, disabled, twErr)
	if err != nil {
		return nil, err
	}
	t := &Tracer{loaded: loaded, features: loaded.features, iters: map[string]*link.Iter{}}
	err = loaded.maps.Assign(&t.maps)
	if err == nil {
		err = loaded.maps.Assign(&t.vars)
	}
	if err != nil {
		t.Close()
		return nil, err
	}
	if err := t.attach(); err != nil {
		t.Close()
		return nil, err
	}
	t.ring, err = newRing(t.maps.Events)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("opening the ring buffer: %w", err)
	}
	return t, nil
}

// timerHandler finds the address of tw_timer_handler, the timewait
// sockets' timer function: from kallsyms, or where addresses are hidden
// there, with the ksym iterator (which needs no CAP_SYSLOG).
func timerHandler(kallsyms string) (uint64, error) {
	addr, err := KernelSymbol(kallsyms, "tw_timer_handler")
	if err == nil {
		return addr, nil
	}
	addr, kerr := ksymAddress("tw_timer_handler")
	if kerr == nil {
		return addr, nil
	}
	return 0, fmt.Errorf("tw_timer_handler's address is unknown: %w; and %w", err, kerr)
}

// attach attaches each loaded feature, the timer programs before the state
// program (a timewait socket born after it must find them in place) and
// the nested stand-in after it, since a tracepoint runs its programs in the
// order they were attached. A feature that fails to attach is refused.
func (t *Tracer) attach() error {
	tracing := func(names ...string) (string, error) {
		for _, name := range names {
			l, err := link.AttachTracing(link.TracingOptions{Program: t.loaded.progs[name], AttachType: ebpf.AttachTraceRawTp})
			if err != nil {
				return name, err
			}
			t.links = append(t.links, l)
		}
		return "", nil
	}
	iter := func(name string, task bool) error {
		var it *link.Iter
		var err error
		if task {
			it, err = attachTaskIter(t.loaded.progs[name])
		} else {
			it, err = link.AttachIter(link.IterOptions{Program: t.loaded.progs[name]})
		}
		if err == nil {
			t.iters[name] = it
		}
		return err
	}
	if st := t.loaded.status(FeatureTimeWait); st.On() {
		before := len(t.links)
		prog, err := tracing(tcpstatedProgOnTimerStart, tcpstatedProgOnTimerCancel, tcpstatedProgOnTimerExpire)
		if err == nil {
			prog = tcpstatedProgPollTimewaits
			err = iter(prog, true)
		}
		if err != nil {
			t.detachFrom(before)
			st.refuse(prog, err)
		}
	}
	for _, f := range []struct {
		feature Feature
		prog    string
	}{{FeatureSnapshot, tcpstatedProgSnapshotSockets}, {FeatureFiles, tcpstatedProgSnapshotFiles}} {
		if st := t.loaded.status(f.feature); st.On() {
			if err := iter(f.prog, false); err != nil {
				st.refuse(f.prog, err)
			}
		}
	}
	if st := t.loaded.status(FeatureAccept); st.On() {
		if prog, err := tracing(tcpstatedProgOnDataReady); err != nil {
			st.refuse(prog, err)
		}
	}
	if st := t.loaded.status(FeatureResets); st.On() {
		before := len(t.links)
		if prog, err := tracing(tcpstatedProgOnSendReset, tcpstatedProgOnReceiveReset); err != nil {
			t.detachFrom(before)
			st.refuse(prog, err)
		}
	}
	if prog, err := tracing(tcpstatedProgOnState, tcpstatedProgOnStateNested); err != nil {
		return coreRefused(prog, err)
	}
	t.features = t.loaded.features
	return nil
}

// detachFrom closes the links attached since the first n.
func (t *Tracer) detachFrom(n int) {
	for _, l := range t.links[n:] {
		l.Close()
	}
	t.links = t.links[:n]
}

// explainLoad turns an error creating maps into one that says what to do.
// Program refusals are reported by KernelReason, per feature.
func explainLoad(err error) error {
	switch {
	case errors.Is(err, os.ErrPermission) && len(MissingCapabilities()) > 0:
		return fmt.Errorf("%w: loading BPF needs CAP_BPF and CAP_PERFMON (run as root)", err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%w: this kernel lacks a BPF feature tcpstated needs (kernel >= %d.%d with BTF)",
			err, MinKernel[0], MinKernel[1])
	}
	return refusal{KernelReason(err), err}
}

// Poll waits up to interval for records (less when the kernel wakes it),
// then hands every queued record to fn. It returns io.EOF once the
// tracer is stopped and drained.
func (t *Tracer) Poll(interval time.Duration, ev *Event, fn func(*Event), bad func(error)) error {
	return t.PollBatched(interval, ev, fn, bad, nil)
}

// pollBatch bounds the records one batch of PollBatched hands over.
const pollBatch = 4096

// PollBatched is Poll handing records over in batches of up to pollBatch,
// each inside one call of batch (when not nil): a consumer that locks a
// table per record can lock it once per batch.
func (t *Tracer) PollBatched(interval time.Duration, ev *Event, fn func(*Event), bad func(error), batch func(func())) error {
	t.readMu.Lock()
	defer t.readMu.Unlock()
	if t.closed.Load() {
		return io.EOF
	}
	deadline := time.Now().Add(interval)
	handle := func(b []byte) {
		if err := Decode(b, ev); err != nil {
			bad(err)
			return
		}
		fn(ev)
	}
	var more bool
	var err error
	drain := func() { more, err = t.ring.drain(pollBatch, handle) }
	for {
		stopping := t.stopping.Load()
		if batch != nil {
			batch(drain)
		} else {
			drain()
		}
		busy := errors.Is(err, errRingBusy)
		if err != nil && !busy {
			return err
		}
		left := time.Until(deadline)
		if more {
			if left <= 0 {
				return nil // the next Poll drains first
			}
			continue // the ring may not wake us for what is left
		}
		if stopping && !busy {
			return io.EOF // detached before the drain: nothing more comes
		}
		if left <= 0 {
			return nil
		}
		if busy {
			// A producer is between reserve and commit (it may have
			// been preempted): come back shortly rather than spin.
			time.Sleep(min(left, 100*time.Microsecond))
			continue
		}
		if err := t.ring.wait(left); err != nil {
			return err
		}
	}
}

// Stop detaches every program, so nothing new is recorded, and makes
// Poll return what is left followed by io.EOF. FIN_WAIT2 -> TIME_WAIT
// switches the timewait poll has not found yet would be lost with the
// programs: it polls once more first.
func (t *Tracer) Stop() error {
	t.stopOnce.Do(func() { t.stopErr = t.stop(true) })
	return t.stopErr
}

// stop is Stop, and Close's without the last poll (the tracer may not
// have opened).
func (t *Tracer) stop(lastPoll bool) error {
	var err error
	if lastPoll {
		if err = t.PollTimeWaits(); err != nil {
			err = fmt.Errorf("last timewait poll: %w", err)
		}
	}
	t.detach()
	t.stopping.Store(true)
	if t.ring != nil {
		err = errors.Join(err, t.ring.stop())
	}
	return err
}

func (t *Tracer) detach() {
	t.linksMu.Lock()
	defer t.linksMu.Unlock()
	for _, l := range t.links {
		l.Close()
	}
	t.links = nil
}

// Close releases everything; a Poll under way returns first.
func (t *Tracer) Close() error {
	if !t.closed.CompareAndSwap(false, true) {
		return nil
	}
	t.stopOnce.Do(func() { t.stopErr = t.stop(false) })
	if t.ring != nil {
		t.readMu.Lock()
		t.ring.close()
		t.readMu.Unlock()
	}
	t.itersMu.Lock()
	for _, it := range t.iters {
		it.Close()
	}
	t.iters = nil
	t.itersMu.Unlock()
	// Assign took the named maps out of the collection: close them here.
	t.maps.Close()
	t.loaded.close()
	return nil
}

// Counters is what the kernel side counted, summed over CPUs.
type Counters struct {
	Records, Lost, HeldFull, TimeWaitFull, WatchFull, Filtered uint64
	// OldTimeWaitSkipped: timewait sockets found at start-up and not
	// followed, past their half of the table. Not a loss of live events.
	OldTimeWaitSkipped uint64
	// RecursionMisses: state changes lost because the kernel ran neither
	// on_state (already running on that CPU: the change came in an
	// interrupt that interrupted it) nor its nested stand-in.
	RecursionMisses uint64
	// NestedRecovered: state changes on_state_nested took for on_state.
	NestedRecovered uint64
	// TimerRecursionMisses: timer tracepoints the kernel did not run the
	// timer programs for; each may have been a timewait socket's.
	TimerRecursionMisses uint64
	// LostPerCPU is Lost by CPU.
	LostPerCPU []uint64
}

// counterField is where one of the kernel's counters goes.
type counterField struct {
	idx tcpstatedCounter
	dst *uint64
}

// counterFields names every kernel counter's field in c (a test checks
// that none is left out).
func counterFields(c *Counters) []counterField {
	return []counterField{
		{tcpstatedCounterCOUNTER_RECORDS, &c.Records},
		{tcpstatedCounterCOUNTER_LOST, &c.Lost},
		{tcpstatedCounterCOUNTER_HELD_FULL, &c.HeldFull},
		{tcpstatedCounterCOUNTER_TW_FULL, &c.TimeWaitFull},
		{tcpstatedCounterCOUNTER_WATCH_FULL, &c.WatchFull},
		{tcpstatedCounterCOUNTER_FILTERED, &c.Filtered},
		{tcpstatedCounterCOUNTER_TW_OLD_SKIPPED, &c.OldTimeWaitSkipped},
		{tcpstatedCounterCOUNTER_STATE_NESTED, &c.NestedRecovered},
	}
}

// Counters reads the per-CPU counters.
func (t *Tracer) Counters() (Counters, error) {
	var c Counters
	read := func(idx uint32) (uint64, []uint64, error) {
		var per []uint64
		if err := t.maps.Counters.Lookup(idx, &per); err != nil {
			return 0, nil, fmt.Errorf("reading counter %d: %w", idx, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		return sum, per, nil
	}
	for _, f := range counterFields(&c) {
		sum, per, err := read(uint32(f.idx))
		if err != nil {
			return c, err
		}
		*f.dst = sum
		if f.idx == tcpstatedCounterCOUNTER_LOST {
			c.LostPerCPU = per
		}
	}
	progs := t.loaded.progs
	if st, err := progs[tcpstatedProgOnState].Stats(); err == nil && st.RecursionMisses > c.NestedRecovered {
		c.RecursionMisses = st.RecursionMisses - c.NestedRecovered
	}
	for _, name := range []string{tcpstatedProgOnTimerStart, tcpstatedProgOnTimerCancel, tcpstatedProgOnTimerExpire} {
		if p := progs[name]; p != nil {
			if st, err := p.Stats(); err == nil {
				c.TimerRecursionMisses += st.RecursionMisses
			}
		}
	}
	return c, nil
}

// ErrFeatureOff: the walk belongs to a feature that does not run.
var ErrFeatureOff = errors.New("feature off")

// walk opens an attached iterator, reads it to the end and decodes every
// record. The programs write whole records, so a short read is a bug.
// open runs where the iterator must be created (a network namespace).
func (t *Tracer) walk(name string, open func(func() error) error, fn func(*Event)) error {
	t.itersMu.RLock()
	defer t.itersMu.RUnlock()
	it := t.iters[name]
	if it == nil {
		return ErrFeatureOff
	}
	return open(func() error {
		rd, err := it.Open()
		if err != nil {
			return fmt.Errorf("opening iterator %s: %w", name, err)
		}
		defer rd.Close()
		// Record by record through a small buffer: a walk of 100k
		// sockets must not hold all of them in memory at once.
		br := bufio.NewReaderSize(rd, 64<<10)
		var ev Event
		rec := make([]byte, RecordSize)
		for {
			_, err := io.ReadFull(br, rec)
			switch {
			case err == io.EOF:
				return nil
			case err == io.ErrUnexpectedEOF:
				return fmt.Errorf("iterator %s: a partial record at the end", name)
			case err != nil:
				return fmt.Errorf("reading iterator %s: %w", name, err)
			}
			if err := Decode(rec, &ev); err != nil {
				return fmt.Errorf("iterator %s: %w", name, err)
			}
			fn(&ev)
		}
	})
}

func here(fn func() error) error { return fn() }

// Sockets walks every TCP socket of one network namespace, timewait ones
// included (KindSocket events). The iterator sees the namespace it is
// created in, so it is created inside ns.
func (t *Tracer) Sockets(ns netns.NS, fn func(*Event)) error {
	return t.walk(tcpstatedProgSnapshotSockets, func(open func() error) error { return netns.Do(ns, open) }, fn)
}

// Files walks every process's file table for TCP sockets (KindFile events).
func (t *Tracer) Files(fn func(*Event)) error {
	return t.walk(tcpstatedProgSnapshotFiles, here, fn)
}

// PollTimeWaits finds substate switches and early ends of timewait
// sockets; what it finds arrives through the ring buffer. It walks only
// when a timewait socket is watched: the walk visits every bucket of the
// map, empty or not, and under a connection storm almost every poll found
// nothing to do.
func (t *Tracer) PollTimeWaits() error {
	if !t.Enabled(FeatureTimeWait) {
		return nil
	}
	var n uint64
	if err := t.vars.Watched.Get(&n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return t.walkTimeWaits()
}

// walkTimeWaits runs the poll, even over an empty watch list: its end
// samples the clock (MeasureHZ). One at a time: two could report the same
// switch twice.
func (t *Tracer) walkTimeWaits() error {
	t.pollMu.Lock()
	defer t.pollMu.Unlock()
	return t.walk(tcpstatedProgPollTimewaits, here, func(*Event) {})
}

// MeasureHZ finds the kernel's tick rate from two clock samples taken by
// the poll iterator, and gives it to the BPF programs, which need it to
// date substate switches from timer expiries.
func (t *Tracer) MeasureHZ(gap time.Duration) (uint32, error) {
	sample := func() (j, ns uint64, err error) {
		if err = t.walkTimeWaits(); err != nil {
			return
		}
		if err = t.vars.ClockJiffies.Get(&j); err != nil {
			return
		}
		err = t.vars.ClockNs.Get(&ns)
		return
	}
	j1, n1, err := sample()
	if err != nil {
		return 0, err
	}
	time.Sleep(gap)
	j2, n2, err := sample()
	if err != nil {
		return 0, err
	}
	hz := snapHZ(float64(j2-j1) * 1e9 / float64(n2-n1))
	if hz == 0 {
		return 0, fmt.Errorf("kernel tick rate not one of 100, 250, 300, 1000 (measured %d ticks in %d ns)", j2-j1, n2-n1)
	}
	if err := t.vars.Hz.Set(hz); err != nil {
		return 0, fmt.Errorf("setting hz: %w", err)
	}
	t.hz = hz
	return hz, nil
}

func snapHZ(measured float64) uint32 {
	for _, hz := range []float64{100, 250, 300, 1000} {
		if measured > hz*0.9 && measured < hz*1.1 {
			return uint32(hz)
		}
	}
	return 0
}
