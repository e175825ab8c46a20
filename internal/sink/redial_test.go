package sink

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPeerThatDropsEveryConnectionIsRedialledWithBackoff: a peer that takes
// each connection and hangs up at once (a proxy with no backend, a TLS
// server refusing the client late) is redialled after growing waits, not
// in a tight loop.
func TestPeerThatDropsEveryConnectionIsRedialledWithBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()

	s := mustOpen(t, "tcp://"+ln.Addr().String(), Options{MaxBackoff: time.Second})
	time.Sleep(2 * time.Second)
	st := s.Stats()
	// Waits of about 0.1, 0.2, 0.4, 0.8 s: a handful of dials in 2 s, where
	// redialling at once made hundreds.
	if n := accepted.Load(); n < 2 || n > 15 {
		t.Fatalf("%d connections in 2s, want a few spaced by a backoff; stats %+v", n, st)
	}
	if st.Errors < 2 || !strings.Contains(st.LastError, "peer closed the connection") {
		t.Fatalf("stats %+v", st)
	}
}
