package sink

import (
	"net"
	"sync/atomic"
	"time"
)

// netDest writes to a TCP, unix stream, UDP or unix datagram socket.
type netDest struct {
	network string // "tcp", "unix", "udp" or "unixgram"
	addr    string
	dialTO  time.Duration
	wake    chan struct{} // the sink's wake-up, poked when a peer hangs up

	conn net.Conn
	lost *atomic.Bool // set by watchPeer for conn
}

func (d *netDest) open(deadline time.Time) error {
	dl := time.Now().Add(d.dialTO)
	if !deadline.IsZero() && deadline.Before(dl) {
		dl = deadline
	}
	conn, err := (&net.Dialer{Deadline: dl}).Dial(d.network, d.addr)
	if err != nil {
		return err
	}
	d.conn = conn
	d.lost = new(atomic.Bool)
	if !d.datagram() {
		go watchPeer(conn, d.lost, d.wake)
	}
	return nil
}

// watchPeer reads from a stream the sink only writes to. Collectors send
// nothing, so a read that ends means the peer hung up; noticing it here
// lets an idle sink reconnect before its next event instead of losing that
// event into a dead socket.
func watchPeer(conn net.Conn, lost *atomic.Bool, wake chan<- struct{}) {
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			break
		}
	}
	lost.Store(true)
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
	return d.conn.Write(p)
}

func (d *netDest) close() {
	if d.conn != nil {
		d.conn.Close() // also ends watchPeer's read
		d.conn = nil
	}
}

func (d *netDest) healthy() bool {
	return d.conn != nil && !d.lost.Load()
}

// takeBack: the failed write closes the connection; the next starts clean.
func (d *netDest) takeBack(int) error { return nil }

func (d *netDest) datagram() bool { return d.network == "udp" || d.network == "unixgram" }
func (d *netDest) reopens() bool  { return false }
