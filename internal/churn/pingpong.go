package churn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// PingPongResult is what one ping-pong run did.
type PingPongResult struct {
	Connections int     `json:"connections"`
	RoundTrips  int64   `json:"round_trips"`
	Seconds     float64 `json:"seconds"`
	Rate        float64 `json:"rate"` // round trips per second
	ServerPort  int     `json:"server_port"`
}

// PingPong opens conns loopback connections to port (0: the kernel picks)
// and, for d, has each send one byte and wait for its echo, over and over:
// traffic that arms and cancels TCP's retransmit and delayed-ACK timers on
// every round trip but makes no state change, like a busy host whose
// connections live long. The connections are set up before and closed
// after the measured time.
func PingPong(conns, port int, d time.Duration) (PingPongResult, error) {
	if conns < 1 || d <= 0 {
		return PingPongResult{}, errors.New("need at least one connection and a positive duration")
	}
	l, err := netListen(port)
	if err != nil {
		return PingPongResult{}, err
	}
	defer l.Close()
	r := PingPongResult{Connections: conns, ServerPort: l.Addr().(*net.TCPAddr).Port}
	go echo(l)

	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	dst := l.Addr().String()
	for range conns {
		c, err := net.Dial("tcp4", dst)
		if err != nil {
			return r, fmt.Errorf("connection %d of %d: %w", len(clients)+1, conns, err)
		}
		clients = append(clients, c)
	}

	var trips atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := []byte{'p'}
			for !stop.Load() {
				if _, err := c.Write(b); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, b); err != nil {
					errs <- err
					return
				}
				trips.Add(1)
			}
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	r.RoundTrips = trips.Load()
	r.Rate = float64(r.RoundTrips) / r.Seconds
	select {
	case err := <-errs:
		return r, err
	default:
		return r, nil
	}
}

// echo writes back what each accepted connection sends until it closes.
func echo(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}
