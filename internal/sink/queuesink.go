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

	d drainState
}

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

// Flush wakes the drainer if a write found the queue empty since the
// last Flush (Options.DeferWake).
func (s *queueSink) Flush() {
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
