package events

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
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
}

// Tracer owns the loaded programs, their links and the ring-buffer reader.
type Tracer struct {
	objs  tcpstatedObjects
	links []link.Link
	ring  *ring
	// stopping: Stop was called; Poll drains what is left and ends.
	stopping atomic.Bool
	readMu   sync.Mutex // held by Poll; Close takes it before unmapping
	hz       uint32
	twWarn   error
	closed   atomic.Bool
	linksMu  sync.Mutex
	pollMu   sync.Mutex
}

// TimeWaitUnavailable says why TIME_WAIT cannot be followed, or nil.
func (t *Tracer) TimeWaitUnavailable() error { return t.twWarn }

// HZ is the kernel's tick rate, as measured at start.
func (t *Tracer) HZ() uint32 { return t.hz }

// Open checks the system, loads and attaches every program.
func Open(cfg Config) (*Tracer, error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	if cfg.RingBytes <= 0 {
		cfg.RingBytes = 8 << 20
	}
	if cfg.MaxTimeWait <= 0 {
		cfg.MaxTimeWait = 131072
	}
	if cfg.WakeupBytes <= 0 {
		// Small enough that one burst fits a sink's queue (~1900
		// records for 8 MiB), large enough to wake the reader rarely.
		cfg.WakeupBytes = cfg.RingBytes / 32
	}
	if cfg.Kallsyms == "" {
		cfg.Kallsyms = "/proc/kallsyms"
	}
	spec, err := loadTcpstated()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded BPF object: %w", err)
	}
	t := &Tracer{}
	twFn, err := KernelSymbol(cfg.Kallsyms, "tw_timer_handler")
	if err != nil {
		// Hidden addresses: the ksym iterator needs no CAP_SYSLOG.
		if addr, kerr := ksymAddress("tw_timer_handler"); kerr == nil {
			twFn, err = addr, nil
		} else {
			err = fmt.Errorf("%w; and %w", err, kerr)
		}
	}
	if err != nil {
		t.twWarn = fmt.Errorf("TIME_WAIT cannot be followed: %w", err)
	}
	var states uint32
	for _, s := range cfg.Filter.States {
		states |= 1 << s
	}
	set := map[string]any{
		"filter_pid":    cfg.Filter.Pid,
		"filter_port":   cfg.Filter.Port,
		"filter_family": uint8(cfg.Filter.Family),
		"filter_states": states,
		"tw_timer_fn":   twFn,
		"wakeup_bytes":  uint64(cfg.WakeupBytes),
		// Half the table at most for TIME_WAITs from before tracing.
		"max_preexisting_tw": uint32(cfg.MaxTimeWait / 2),
	}
	for name, v := range set {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("setting %s: %w", name, err)
		}
	}
	spec.Maps["events"].MaxEntries = uint32(cfg.RingBytes)
	spec.Maps["timewaits"].MaxEntries = uint32(cfg.MaxTimeWait)
	spec.Maps["tw_watch"].MaxEntries = uint32(max(cfg.MaxTimeWait/2, 1024))

	if err := spec.LoadAndAssign(&t.objs, nil); err != nil {
		return nil, explainLoad(err)
	}
	attach := []*ebpf.Program{t.objs.OnStateNested, t.objs.OnState}
	if twFn != 0 {
		attach = append(attach, t.objs.OnTimerStart, t.objs.OnTimerCancel, t.objs.OnTimerExpire)
	}
	// Attached from the end of the list: the state program after the
	// timer programs (a timewait socket born after it must find them in
	// place), and its nested stand-in after it, since a tracepoint runs
	// its programs in the order they were attached.
	for i := len(attach) - 1; i >= 0; i-- {
		l, err := link.AttachTracing(link.TracingOptions{Program: attach[i], AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("attaching %s: %w", attach[i], explainLoad(err))
		}
		t.links = append(t.links, l)
	}
	t.ring, err = newRing(t.objs.Events)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("opening the ring buffer: %w", err)
	}
	return t, nil
}

// explainLoad turns a loader error into one that says what to do.
func explainLoad(err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w: loading BPF needs CAP_BPF and CAP_PERFMON (run as root)", err)
	case errors.As(err, &ve):
		return fmt.Errorf("the kernel's verifier rejected a program (is the kernel >= %d.%d?): %+v",
			MinKernel[0], MinKernel[1], ve)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%w: this kernel lacks a BPF feature tcpstated needs (kernel >= %d.%d with BTF)",
			err, MinKernel[0], MinKernel[1])
	}
	return err
}

// Poll waits up to interval for records (less when the kernel wakes it),
// then hands every queued record to fn. It returns io.EOF once the
// tracer is stopped and drained.
func (t *Tracer) Poll(interval time.Duration, ev *Event, fn func(*Event), bad func(error)) error {
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
	for {
		stopping := t.stopping.Load()
		err := t.ring.drain(handle)
		busy := errors.Is(err, errRingBusy)
		if err != nil && !busy {
			return err
		}
		if stopping && !busy {
			return io.EOF // detached before the drain: nothing more comes
		}
		left := time.Until(deadline)
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
// Poll return what is left followed by io.EOF.
func (t *Tracer) Stop() error {
	t.detach()
	t.stopping.Store(true)
	if t.ring != nil {
		return t.ring.stop()
	}
	return nil
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
	t.Stop()
	if t.ring != nil {
		t.readMu.Lock()
		t.ring.close()
		t.readMu.Unlock()
	}
	return t.objs.Close()
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

// Counters reads the per-CPU counters.
func (t *Tracer) Counters() (Counters, error) {
	var c Counters
	read := func(idx uint32) (uint64, []uint64, error) {
		var per []uint64
		if err := t.objs.Counters.Lookup(idx, &per); err != nil {
			return 0, nil, fmt.Errorf("reading counter %d: %w", idx, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		return sum, per, nil
	}
	var err error
	dst := []*uint64{&c.Records, &c.Lost, &c.HeldFull, &c.TimeWaitFull, &c.WatchFull, &c.Filtered, &c.OldTimeWaitSkipped, &c.NestedRecovered}
	for i, p := range dst {
		var per []uint64
		if *p, per, err = read(uint32(i)); err != nil {
			return c, err
		}
		if i == 1 {
			c.LostPerCPU = per
		}
	}
	if st, err := t.objs.OnState.Stats(); err == nil && st.RecursionMisses > c.NestedRecovered {
		c.RecursionMisses = st.RecursionMisses - c.NestedRecovered
	}
	for _, p := range []*ebpf.Program{t.objs.OnTimerStart, t.objs.OnTimerCancel, t.objs.OnTimerExpire} {
		if st, err := p.Stats(); err == nil {
			c.TimerRecursionMisses += st.RecursionMisses
		}
	}
	return c, nil
}

// runIter attaches an iterator program, reads it to the end and decodes
// every record. The programs write whole records, so a short read is a bug.
func runIter(prog *ebpf.Program, m *ebpf.Map, fn func(*Event)) error {
	it, err := link.AttachIter(link.IterOptions{Program: prog, Map: m})
	if err != nil {
		return fmt.Errorf("attaching iterator %s: %w", prog, explainLoad(err))
	}
	defer it.Close()
	rd, err := it.Open()
	if err != nil {
		return fmt.Errorf("opening iterator %s: %w", prog, err)
	}
	defer rd.Close()
	// Record by record through a small buffer: a walk of 100k sockets
	// must not hold all of them in memory at once.
	br := bufio.NewReaderSize(rd, 64<<10)
	var ev Event
	rec := make([]byte, RecordSize)
	for {
		_, err := io.ReadFull(br, rec)
		switch {
		case err == io.EOF:
			return nil
		case err == io.ErrUnexpectedEOF:
			return fmt.Errorf("iterator %s: a partial record at the end", prog)
		case err != nil:
			return fmt.Errorf("reading iterator %s: %w", prog, err)
		}
		if err := Decode(rec, &ev); err != nil {
			return fmt.Errorf("iterator %s: %w", prog, err)
		}
		fn(&ev)
	}
}

// Sockets walks every TCP socket of the daemon's network namespace,
// timewait ones included (KindSocket events).
func (t *Tracer) Sockets(fn func(*Event)) error {
	return runIter(t.objs.SnapshotSockets, nil, fn)
}

// Files walks every process's file table for TCP sockets (KindFile events).
func (t *Tracer) Files(fn func(*Event)) error {
	return runIter(t.objs.SnapshotFiles, nil, fn)
}

// PollTimeWaits finds substate switches and early ends of timewait
// sockets; what it finds arrives through the ring buffer. It walks only
// when a timewait socket is watched: the walk visits every bucket of the
// map, empty or not, and under a connection storm almost every poll found
// nothing to do.
func (t *Tracer) PollTimeWaits() error {
	var n uint64
	if err := t.objs.Watched.Get(&n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return t.walkTimeWaits()
}

// walkTimeWaits runs the poll iterator over the watch list, even an empty
// one: its end samples the clock (MeasureHZ).
func (t *Tracer) walkTimeWaits() error {
	// One walk at a time: two could report the same switch twice.
	t.pollMu.Lock()
	defer t.pollMu.Unlock()
	return runIter(t.objs.PollTimewaits, t.objs.TwWatch, func(*Event) {})
}

// MeasureHZ finds the kernel's tick rate from two clock samples taken by
// the poll iterator, and gives it to the BPF programs, which need it to
// date substate switches from timer expiries.
func (t *Tracer) MeasureHZ(gap time.Duration) (uint32, error) {
	sample := func() (j, ns uint64, err error) {
		if err = t.walkTimeWaits(); err != nil {
			return
		}
		if err = t.objs.ClockJiffies.Get(&j); err != nil {
			return
		}
		err = t.objs.ClockNs.Get(&ns)
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
	if err := t.objs.Hz.Set(hz); err != nil {
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

// ProgramNames lists the loaded programs, for logs.
func (t *Tracer) ProgramNames() string {
	return strings.Join([]string{"tp_btf/inet_sock_set_state", "tp_btf/timer_start", "tp_btf/timer_cancel", "tp_btf/timer_expire_entry"}, ", ")
}
