package sink

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

const (
	// A batch is what one write(2) carries on stream and file sinks.
	batchBytes  = 64 << 10
	batchEvents = 1024

	// After a wake-up the drainer waits up to lingerDelay for a batch of
	// lingerEnough events: at most a millisecond of latency, and at most a
	// thousand wake-ups a second however busy the sink.
	lingerDelay  = time.Millisecond
	lingerEnough = 64

	// A connection the peer drops sooner than steadyAfter after it was
	// made counts as a failed attempt, not as a collector restart.
	steadyAfter = time.Second
)

var errPeerClosed = errors.New("peer closed the connection")

// drainState belongs to the drainer goroutine alone.
type drainState struct {
	batch         []byte
	ends          []int // ends[i]: where event i of the batch ends in batch
	backoff       backoff
	timer         *time.Timer
	stop          <-chan struct{} // nil once closing
	closing       bool
	deadline      time.Time // when closing gives up on what is still queued
	everConnected bool
	droppedSeen   uint64
	trouble       *troubleLog // open, dial and write failures
	drops         *troubleLog // queue-full drops

	// dropBackoff spaces redials after connections the peer dropped at
	// once (afterLoss). A write's success does not reset it: a proxy with
	// no backend takes writes up to the drop.
	dropBackoff backoff
	connectedAt time.Time // when the current connection was made
}

// start launches the drainer; openAlready says dst was opened by Open.
func (s *queueSink) start(openAlready bool) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	s.d = drainState{
		batch:         make([]byte, 0, batchBytes+slotSize),
		ends:          make([]int, 0, batchEvents),
		backoff:       newBackoff(s.opts.MaxBackoff),
		dropBackoff:   newBackoff(s.opts.MaxBackoff),
		timer:         timer,
		stop:          s.stop,
		everConnected: openAlready,
		trouble:       newTroubleLog(s.opts.Logger, s.name),
		drops:         newTroubleLog(s.opts.Logger, s.name),
	}
	s.connected.Store(openAlready)
	go s.run()
}

func (s *queueSink) run() {
	defer close(s.done)
	for {
		s.serveControl()
		s.noteDrops()
		_, queued := s.q.peek()
		if s.d.closing && (queued == 0 || !time.Now().Before(s.d.deadline)) {
			break
		}
		if s.connected.Load() && !s.dst.healthy() {
			s.lose("lost the connection", lossReason(s.dst))
			s.afterLoss()
		}
		if !s.connected.Load() {
			if s.connect() != nil {
				s.pause()
			}
			continue
		}
		if queued == 0 {
			s.idle()
			continue
		}
		if err := s.deliver(); err != nil {
			s.lose("write failed; retrying with backoff", err)
			s.pause()
		}
	}
	s.finish()
}

// deliver writes the oldest queued events and frees those fully written.
// An event cut short by a failed write stays queued and goes again whole.
func (s *queueSink) deliver() error {
	head, n := s.q.peek()
	if s.dst.datagram() {
		return s.deliverEach(head, n)
	}
	buf, ends := s.d.batch[:0], s.d.ends[:0]
	for i := 0; i < n && len(ends) < cap(ends) && len(buf) < batchBytes; i++ {
		buf = s.frame.appendFrame(buf, s.q.at(head, i))
		ends = append(ends, len(buf))
	}
	s.keepBatch(buf)
	wrote, err := s.dst.write(buf, s.deadlineIn(s.opts.WriteTimeout))
	done := 0
	for done < len(ends) && ends[done] <= wrote {
		done++
	}
	s.q.release(done)
	s.written.Add(uint64(done))
	if err != nil {
		// The event cut short goes again whole: take back its head, or
		// the file would hold a fragment glued to the event's next try.
		start := 0
		if done > 0 {
			start = ends[done-1]
		}
		if cut := wrote - start; cut > 0 {
			if terr := s.dst.takeBack(cut); terr != nil {
				s.d.trouble.failed("a write stopped inside an event and its start could not be taken back: one line is broken", terr)
			}
		}
		return err
	}
	s.delivered()
	return nil
}

// delivered notes a write that went through: the sink is healthy again.
func (s *queueSink) delivered() {
	s.d.backoff.reset()
	if s.failing.Load() {
		s.failing.Store(false)
		s.d.trouble.recovered("sink delivering again")
	}
}

// failed notes why the sink cannot deliver, for Stats until it can again.
// The reason is stored first: a reader that sees failing sees why.
func (s *queueSink) failed(err error) {
	msg := err.Error()
	s.lastErr.Store(&msg)
	s.failing.Store(true)
}

// deliverEach sends one datagram per event.
func (s *queueSink) deliverEach(head, n int) error {
	for i := 0; i < min(n, batchEvents); i++ {
		frame := s.frame.appendFrame(s.d.batch[:0], s.q.at(head, i))
		s.keepBatch(frame)
		_, err := s.dst.write(frame, s.deadlineIn(s.opts.WriteTimeout))
		switch {
		case err == nil:
			s.written.Add(1)
		case errors.Is(err, syscall.EMSGSIZE):
			// This event can never go; retrying it would stall the sink.
			s.errs.Add(1)
			s.dropped.Add(1)
			s.d.trouble.failed("datagram too large for the socket; event dropped", err)
		default:
			return err
		}
		s.q.release(1)
	}
	s.delivered()
	return nil
}

// keepBatch keeps a grown batch buffer for reuse unless one huge event
// blew it far past its usual size.
func (s *queueSink) keepBatch(buf []byte) {
	if cap(buf) > 4*batchBytes {
		buf = make([]byte, 0, batchBytes+slotSize)
	}
	s.d.batch = buf[:0]
}

func (s *queueSink) connect() error {
	if err := s.dst.open(s.deadlineIn(s.opts.DialTimeout)); err != nil {
		s.errs.Add(1)
		s.failed(err)
		s.d.trouble.failed("cannot open sink; retrying with backoff", err)
		return err
	}
	if s.d.everConnected {
		s.reconnects.Add(1)
	}
	s.d.everConnected = true
	s.d.connectedAt = time.Now()
	s.connected.Store(true)
	// Recovered only once a write goes through (delivered): a file on a
	// full disk opens fine and fails at the next write. With nothing
	// queued there is nothing to prove: a stream whose peer hung up
	// while idle is fine again once it reconnects.
	if _, queued := s.q.peek(); queued == 0 {
		s.delivered()
	}
	return nil
}

func (s *queueSink) lose(msg string, err error) {
	s.errs.Add(1)
	s.failed(err)
	s.d.trouble.failed(msg, err)
	s.dst.close()
	s.connected.Store(false)
}

func (s *queueSink) reopen() error {
	s.dst.close()
	s.connected.Store(false)
	if err := s.dst.open(s.deadlineIn(s.opts.DialTimeout)); err != nil {
		s.errs.Add(1)
		s.failed(err)
		s.d.trouble.failed("cannot reopen sink; retrying with backoff", err)
		return fmt.Errorf("sink %s: reopen: %w", s.name, err)
	}
	s.d.everConnected = true
	s.d.connectedAt = time.Now()
	s.connected.Store(true)
	s.d.backoff.reset()
	// Recovered only once a write goes through (delivered).
	return nil
}

// afterLoss follows a connection the peer ended. One that had lasted is
// redialled at once: the collector restarted, and an idle sink should be
// back before its next event. One dropped right away is redialled only
// after a growing wait, or a peer that refuses every connection (a client
// certificate it does not permit) would be redialled in a tight loop.
func (s *queueSink) afterLoss() {
	if time.Since(s.d.connectedAt) >= steadyAfter {
		s.d.dropBackoff.reset()
		return
	}
	s.pauseFor(s.d.dropBackoff.next())
}

// pause waits out the backoff after a failure, still answering Reopen and
// Close.
func (s *queueSink) pause() { s.pauseFor(s.d.backoff.next()) }

func (s *queueSink) pauseFor(wait time.Duration) {
	if s.d.closing {
		wait = min(wait, time.Until(s.d.deadline))
	}
	if wait <= 0 {
		return
	}
	s.d.timer.Reset(wait)
	defer s.d.timer.Stop()
	for {
		select {
		case <-s.d.timer.C:
			return
		case req := <-s.reopenReq:
			req <- s.reopen()
			if s.connected.Load() {
				return
			}
		case <-s.d.stop:
			s.beginClose()
			return
		}
	}
}

// idle waits for an event, a hung-up peer, Reopen or Close.
func (s *queueSink) idle() {
	select {
	case <-s.wake:
		s.linger()
	case req := <-s.reopenReq:
		req <- s.reopen()
	case <-s.d.stop:
		s.beginClose()
	}
}

// linger lets a few more events gather after a wake-up before writing.
// Without it a drainer that keeps up would empty the queue after every
// event, and each following Write would pay for waking it again.
func (s *queueSink) linger() {
	if s.q.len() >= lingerEnough {
		return
	}
	s.d.timer.Reset(lingerDelay)
	defer s.d.timer.Stop()
	select {
	case <-s.d.timer.C:
	case req := <-s.reopenReq:
		req <- s.reopen()
	case <-s.d.stop:
		s.beginClose()
	}
}

// serveControl answers a pending Reopen or Close between two batches.
func (s *queueSink) serveControl() {
	select {
	case req := <-s.reopenReq:
		req <- s.reopen()
	case <-s.d.stop:
		s.beginClose()
	default:
	}
}

func (s *queueSink) beginClose() {
	s.d.closing = true
	s.d.stop = nil
	s.d.deadline = time.Now().Add(s.opts.CloseTimeout)
}

// deadlineIn is now+d, but never past the close deadline.
func (s *queueSink) deadlineIn(d time.Duration) time.Time {
	t := time.Now().Add(d)
	if s.d.closing && s.d.deadline.Before(t) {
		return s.d.deadline
	}
	return t
}

// noteDrops warns, rate-limited, when Write has dropped events.
func (s *queueSink) noteDrops() {
	if d := s.dropped.Load(); d != s.d.droppedSeen {
		s.d.drops.failedN("queue full; events dropped", nil, d-s.d.droppedSeen)
		s.d.droppedSeen = d
	}
}

func (s *queueSink) finish() {
	s.dst.close()
	s.connected.Store(false)
	if n := s.q.close(); n > 0 {
		s.dropped.Add(uint64(n))
		s.closeErr = fmt.Errorf("sink %s: %d queued events undelivered at close", s.name, n)
	}
	s.noteDrops()
}
