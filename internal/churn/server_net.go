package churn

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
)

// netListen opens the net-package listener. Go >= 1.24 listens with MPTCP
// by default; the churn must be plain TCP, so it is switched off.
func netListen(port int) (*net.TCPListener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	addr := net.JoinHostPort(net.IP(ServerAddr[:]).String(), strconv.Itoa(port))
	l, err := lc.Listen(context.Background(), "tcp4", addr)
	if err != nil {
		return nil, err
	}
	return l.(*net.TCPListener), nil
}

// netServe accepts until the listener is closed; each connection is read
// to EOF in its own goroutine and then closed, so the server closes second.
func netServe(l *net.TCPListener, count *counters, stop *atomic.Bool) {
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			if stop.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		count.accepted.Add(1)
		go func() {
			if _, err := io.Copy(io.Discard, c); err != nil {
				count.resets.Add(1)
			} else {
				count.closed.Add(1)
			}
			c.Close()
		}()
	}
}
