package churn

import (
	"sync"
	"sync/atomic"
)

// counters are shared by every client and server worker of one run. An
// atomic add per connection costs nothing next to the ~10 µs of kernel work
// a loopback connection takes.
type counters struct {
	completed atomic.Int64 // client connected and closed first
	failed    atomic.Int64 // client connect (or socket/bind) failed
	accepted  atomic.Int64 // server accepted
	closed    atomic.Int64 // server read EOF, then closed
	resets    atomic.Int64 // server saw an error instead of EOF

	errOnce  sync.Once
	firstErr atomic.Value // string: the first client failure, to tell why

	serverErrOnce sync.Once
	serverErr     error // a server thread's poll loop broke down
}

func (c *counters) fail(err error) {
	c.failed.Add(1)
	c.errOnce.Do(func() { c.firstErr.Store(err.Error()) })
}

func (c *counters) firstError() string {
	s, _ := c.firstErr.Load().(string)
	return s
}

func (c *counters) serverFailed(err error) {
	c.serverErrOnce.Do(func() { c.serverErr = err })
}

// serverError is read only after every server worker has returned.
func (c *counters) serverError() error { return c.serverErr }
