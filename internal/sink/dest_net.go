package sink

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// netDest writes to a TCP, unix stream, UDP or unix datagram socket, or
// to a TLS session over TCP.
type netDest struct {
	network string // "tcp", "unix", "udp" or "unixgram"
	addr    string
	dialTO  time.Duration
	wake    chan struct{} // the sink's wake-up, poked when a peer hangs up
	tls     *tls.Config   // nil: clear text

	conn   net.Conn               // what is written: raw, or a *tls.Conn over it
	raw    net.Conn               // the socket itself
	lost   *atomic.Pointer[error] // set by watchPeer for conn: why the peer is gone
	broken bool                   // a write on conn failed
}

func (d *netDest) open(deadline time.Time) error {
	dl := time.Now().Add(d.dialTO)
	if !deadline.IsZero() && deadline.Before(dl) {
		dl = deadline
	}
	raw, err := (&net.Dialer{Deadline: dl}).Dial(d.network, d.addr)
	if err != nil {
		return err
	}
	conn := raw
	if d.tls != nil {
		if conn, err = startTLS(raw, d.tls, dl); err != nil {
			return err
		}
	}
	d.conn, d.raw, d.broken = conn, raw, false
	d.lost = new(atomic.Pointer[error])
	if !d.datagram() {
		go watchPeer(conn, d.lost, d.wake)
	}
	return nil
}

// watchPeer reads from a stream the sink only writes to. Collectors send
// nothing, so a read that ends means the peer hung up; noticing it here
// lets an idle sink reconnect before its next event instead of losing that
// event into a dead socket. Over TLS the read also brings the server's
// alerts, such as a TLS 1.3 server refusing the client's certificate,
// which it can only say after the client's handshake is done.
func watchPeer(conn net.Conn, lost *atomic.Pointer[error], wake chan<- struct{}) {
	buf := make([]byte, 512)
	var err error
	for err == nil {
		_, err = conn.Read(buf)
	}
	why := errPeerClosed
	if !errors.Is(err, io.EOF) {
		why = fmt.Errorf("%w: %w", errPeerClosed, err)
	}
	lost.Store(&why)
	select {
	case wake <- struct{}{}:
	default:
	}
}

func (d *netDest) write(p []byte, deadline time.Time) (int, error) {
	if d.conn == nil {
		return 0, net.ErrClosed
	}
	if err := d.conn.SetWriteDeadline(deadline); err != nil {
		return 0, err
	}
	n, err := d.conn.Write(p)
	if err != nil {
		d.broken = true
	}
	return n, err
}

func (d *netDest) close() {
	if d.conn == nil {
		return
	}
	if tc, ok := d.conn.(*tls.Conn); ok {
		closeTLS(tc, d.raw, !d.broken && d.lost.Load() == nil)
	} else {
		d.conn.Close() // also ends watchPeer's read
	}
	d.conn, d.raw = nil, nil
}

func (d *netDest) healthy() bool {
	return d.conn != nil && d.lost.Load() == nil
}

// lossErr says why the peer went away, once watchPeer has seen it go.
func (d *netDest) lossErr() error {
	if d.lost == nil {
		return nil
	}
	if why := d.lost.Load(); why != nil {
		return *why
	}
	return nil
}

// takeBack: the failed write closes the connection; the next starts clean.
func (d *netDest) takeBack(int) error { return nil }

func (d *netDest) datagram() bool { return d.network == "udp" || d.network == "unixgram" }
func (d *netDest) reopens() bool  { return false }
