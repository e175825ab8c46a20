package sink

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// troubleEvery is the least time between two warnings of one kind from one
// sink: a dead collector must not flood the daemon's own log.
const troubleEvery = 10 * time.Second

// troubleLog reports a sink's failures to the daemon's logger: the first at
// once, then at most one line per troubleEvery carrying how many failures
// it stands for.
type troubleLog struct {
	log   zerolog.Logger
	sink  string
	every time.Duration
	now   func() time.Time

	mu       sync.Mutex
	reported time.Time // when the last warning went out
	pending  uint64    // failures not yet in a warning
	down     bool      // a warning went out and no recovery was logged since
}

func newTroubleLog(log zerolog.Logger, sink string) *troubleLog {
	return &troubleLog{log: log, sink: sink, every: troubleEvery, now: time.Now}
}

func (t *troubleLog) failed(msg string, err error) { t.failedN(msg, err, 1) }

// failedN records n failures and warns unless a warning went out recently.
func (t *troubleLog) failedN(msg string, err error, n uint64) {
	t.mu.Lock()
	t.pending += n
	now := t.now()
	if !t.reported.IsZero() && now.Sub(t.reported) < t.every {
		t.mu.Unlock()
		return
	}
	count := t.pending
	t.pending, t.reported, t.down = 0, now, true
	t.mu.Unlock()

	ev := t.log.Warn().Str("sink", t.sink).Uint64("count", count)
	if err != nil {
		ev = ev.Err(err)
	}
	ev.Msg(msg)
}

// recovered logs msg once after a warned-about failure, so an operator who
// saw the warning also sees the end of it.
func (t *troubleLog) recovered(msg string) {
	t.mu.Lock()
	if !t.down {
		t.mu.Unlock()
		return
	}
	unreported := t.pending
	t.pending, t.down = 0, false
	t.mu.Unlock()
	t.log.Info().Str("sink", t.sink).Uint64("unreported_failures", unreported).Msg(msg)
}
