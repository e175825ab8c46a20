package sink

import (
	"errors"
	"sync"

	"github.com/rs/zerolog"
)

// Fanout writes every event to each of its sinks. Each sink queues on its
// own, so a slow or dead one costs the others nothing.
type Fanout struct {
	sinks []Sink
}

var _ zerolog.LevelWriter = (*Fanout)(nil)

func NewFanout(sinks ...Sink) *Fanout {
	return &Fanout{sinks: append([]Sink(nil), sinks...)}
}

// Sinks returns the sinks, for Stats and metrics.
func (f *Fanout) Sinks() []Sink {
	return append([]Sink(nil), f.sinks...)
}

// Write hands p to every sink. Drops are counted per sink, not reported
// here: an error would make zerolog print a line per event.
func (f *Fanout) Write(p []byte) (int, error) {
	return f.WriteLevel(zerolog.NoLevel, p)
}

func (f *Fanout) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	var firstErr error
	for _, s := range f.sinks {
		if _, err := s.WriteLevel(level, p); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	// Only a closed sink errs; the others have taken p, so n is len(p).
	return len(p), firstErr
}

// Flush wakes the sinks' drainers for what was written since the last
// Flush (sinks opened with Options.DeferWake).
func (f *Fanout) Flush() {
	for _, s := range f.sinks {
		s.Flush()
	}
}

// Reopen reopens every sink (SIGHUP) and reports all failures.
func (f *Fanout) Reopen() error {
	var errs []error
	for _, s := range f.sinks {
		errs = append(errs, s.Reopen())
	}
	return errors.Join(errs...)
}

// Close closes the sinks in parallel, so the whole takes about one sink's
// close timeout rather than the sum.
func (f *Fanout) Close() error {
	errs := make([]error, len(f.sinks))
	var wg sync.WaitGroup
	for i, s := range f.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
