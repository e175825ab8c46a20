package sink

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// queueSink is every kind of sink: a ring of queued events, a destination,
// a framer, and one drainer goroutine (drain.go) moving events from the
// first to the second.
type queueSink struct {
	name  string
	opts  Options
	q     *ring
	dst   destination
	frame framer
	stamp bool // record the time of each Write (syslog timestamps)

	wake      chan struct{}   // a push into an empty queue, or a peer hung up
	stop      chan struct{}   // closed by Close
	done      chan struct{}   // closed when the drainer has finished
	reopenReq chan chan error // Reopen asks the drainer, which owns dst
	closeOnce sync.Once
	closeErr  error // set by the drainer before done is closed

	written, dropped, errs, reconnects, truncated atomic.Uint64
	connected                                     atomic.Bool
	// failing: the last open or write failed and none went through since;
	// lastErr says why.
	failing atomic.Bool
	lastErr atomic.Pointer[string]
	wakeDue atomic.Bool // DeferWake: Flush must wake the drainer

	// DeferWake: events written since the last Flush, queued together at
	// the Flush (or every stageEvents) under one lock of the queue.
	stageMu sync.Mutex
	stage   []event

	d drainState
}

// stageEvents bounds the events a DeferWake sink holds back before it
// queues them: enough to take the queue's lock a few times a batch of the
// pipeline, few enough that their room (preallocated) stays small.
const stageEvents = 64

func newQueueSink(name string, o Options) *queueSink {
	return &queueSink{
		name:      name,
		opts:      o,
		q:         newRing(o.QueueLen),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		reopenReq: make(chan chan error),
	}
}

// stageOf is an empty stage with room for n events, preallocated.
func stageOf(n int) []event {
	home := make([]byte, n*slotSize)
	st := make([]event, n)
	for i := range st {
		st[i].data = home[i*slotSize : i*slotSize : (i+1)*slotSize]
	}
	return st[:0]
}

func (s *queueSink) Name() string { return s.name }

func (s *queueSink) Write(p []byte) (int, error) {
	return s.WriteLevel(zerolog.NoLevel, p)
}

// WriteLevel copies p into the queue and returns; it never waits for I/O.
func (s *queueSink) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var at int64
	if s.stamp {
		at = time.Now().UnixNano()
	}
	if s.opts.DeferWake {
		return s.stageWrite(level, at, p)
	}
	switch s.q.push(level, at, p) {
	case pushedFirst:
		if s.opts.DeferWake {
			s.wakeDue.Store(true)
		} else {
			s.signal()
		}
	case pushedBatch:
		// A long burst: the drainer starts on it without the Flush, so
		// the queue does not fill up behind an idle drainer.
		s.Flush()
	case queueFull:
		s.dropped.Add(1)
	case queueShut:
		s.dropped.Add(1)
		return 0, ErrClosed
	}
	return len(p), nil
}

// stageWrite holds an event back for the next Flush, queueing the stage
// once it is full.
func (s *queueSink) stageWrite(level zerolog.Level, at int64, p []byte) (int, error) {
	s.stageMu.Lock()
	defer s.stageMu.Unlock()
	if s.stage == nil {
		s.stage = stageOf(stageEvents)
	}
	n := len(s.stage)
	s.stage = s.stage[:n+1]
	e := &s.stage[n]
	e.data = append(e.data[:0], p...)
	e.level, e.at = level, at
	if len(s.stage) == cap(s.stage) {
		if s.commit() {
			return 0, ErrClosed
		}
	}
	return len(p), nil
}

// commit queues the stage (stageMu held) and says whether the queue was
// shut. A full batch wakes the drainer at once, as a push does.
func (s *queueSink) commit() (shut bool) {
	if len(s.stage) == 0 {
		return false
	}
	first, full, dropped, shut := s.q.pushMany(s.stage)
	for i := range s.stage {
		if cap(s.stage[i].data) > maxKeptSlot {
			s.stage[i].data = make([]byte, 0, slotSize) // an unusually large event
		}
	}
	s.stage = s.stage[:0]
	s.dropped.Add(uint64(dropped))
	if first {
		s.wakeDue.Store(true)
	}
	if full {
		s.wakeDue.Store(false)
		s.signal()
	}
	return shut
}

// Flush queues what a DeferWake sink holds back and wakes the drainer if
// the queue was empty since the last Flush (Options.DeferWake).
func (s *queueSink) Flush() {
	if s.opts.DeferWake {
		s.stageMu.Lock()
		s.commit()
		s.stageMu.Unlock()
	}
	if s.wakeDue.Load() && s.wakeDue.Swap(false) {
		s.signal()
	}
}

func (s *queueSink) signal() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (s *queueSink) Stats() Stats {
	st := Stats{
		Name:       s.name,
		Queued:     s.q.len(),
		Capacity:   s.q.capacity(),
		Written:    s.written.Load(),
		Dropped:    s.dropped.Load(),
		Errors:     s.errs.Load(),
		Reconnects: s.reconnects.Load(),
		Truncated:  s.truncated.Load(),
		Connected:  s.connected.Load(),
	}
	if st.Failing = s.failing.Load(); st.Failing {
		if e := s.lastErr.Load(); e != nil {
			st.LastError = *e
		}
	}
	return st
}

// Reopen asks the drainer to reopen a file between two writes, so every
// event lands whole in either the old file or the new one.
func (s *queueSink) Reopen() error {
	if !s.dst.reopens() {
		return nil
	}
	req := make(chan error, 1)
	timeout := time.NewTimer(s.opts.WriteTimeout)
	defer timeout.Stop()
	select {
	case s.reopenReq <- req:
	case <-s.done:
		return ErrClosed
	case <-timeout.C:
		return fmt.Errorf("sink %s: reopen: the sink has been busy writing for %v", s.name, s.opts.WriteTimeout)
	}
	select {
	case err := <-req:
		return err
	case <-timeout.C:
		return fmt.Errorf("sink %s: reopen did not finish within %v", s.name, s.opts.WriteTimeout)
	}
}

// Close delivers what is queued for up to CloseTimeout, then stops. It
// waits a little longer than that for a write or dial already under way,
// whose own deadline bounds it.
func (s *queueSink) Close() error {
	s.Flush()
	s.closeOnce.Do(func() { close(s.stop) })
	wait := s.opts.CloseTimeout + max(s.opts.WriteTimeout, s.opts.DialTimeout) + time.Second
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	select {
	case <-s.done:
		return s.closeErr
	case <-timeout.C:
		return fmt.Errorf("sink %s: still busy %v after Close", s.name, wait)
	}
}
