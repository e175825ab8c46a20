package sink

import "time"

// destination is where a sink's drainer writes framed events. Only the
// drainer goroutine calls its methods.
type destination interface {
	// open connects or opens; it is called at start, after a failure and on
	// Reopen. The deadline bounds a dial.
	open(deadline time.Time) error
	// write sends p, giving up at deadline where the kind allows one.
	write(p []byte, deadline time.Time) (int, error)
	close()
	// healthy is false once the far end is known to be gone.
	healthy() bool
	// datagram destinations take one event per write.
	datagram() bool
	// reopens is true where Reopen means something (files).
	reopens() bool
	// takeBack is called when a write stopped n bytes into an event,
	// which goes again whole: it removes those bytes where it can
	// (files), so that every line stays whole. A stream is closed after a
	// failed write instead, and the next connection starts clean.
	takeBack(n int) error
}

// lossExplainer is a destination that knows why its peer went away: a
// reset, or a TLS alert (a server refusing the client's certificate).
type lossExplainer interface{ lossErr() error }

// lossReason is why a destination stopped being healthy, for Stats and
// the log; a plain hang-up where it cannot say more.
func lossReason(d destination) error {
	if e, ok := d.(lossExplainer); ok {
		if err := e.lossErr(); err != nil {
			return err
		}
	}
	return errPeerClosed
}
