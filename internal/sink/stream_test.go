package sink

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// acceptOne accepts one connection and reads it until it closes.
func acceptOne(t *testing.T, ln net.Listener) (net.Conn, *peerReader) {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("accept: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c, readAll(r.c)
	case <-time.After(10 * time.Second):
		t.Fatal("the sink did not connect within 10s")
		return nil, nil
	}
}

// listenAgain reopens a listener on the address a closed one had.
func listenAgain(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen(network, addr); err == nil {
			t.Cleanup(func() { ln.Close() })
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("listen %s %s again: %v", network, addr, err)
	return nil
}

func idsReceived(t *testing.T, pr *peerReader, allowCutTail bool) []int {
	return eventIDs(t, pr.Bytes(), allowCutTail)
}

// checkCollectorRestart is the shared story of the tcp and unix tests: the
// collector takes events, goes away while events keep coming (they queue,
// then drop, and Write never blocks), comes back, and the events resume.
func checkCollectorRestart(t *testing.T, network, addr, url string) {
	ln := listenAgain(t, network, addr)
	const queueLen = 64
	s := mustOpen(t, url, Options{QueueLen: queueLen, MaxBackoff: 50 * time.Millisecond,
		DialTimeout: time.Second, WriteTimeout: 2 * time.Second})

	conn1, got1 := acceptOne(t, ln)
	for i := range 10 {
		s.Write(testEvent(i))
	}
	waitFor(t, 10*time.Second, "10 events at the collector", func() bool {
		return len(idsReceived(t, got1, true)) == 10
	})
	if ids := idsReceived(t, got1, false); !slices.Equal(ids, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("collector got %v", ids)
	}

	// The collector dies. The sink notices the hang-up while idle.
	ln.Close()
	conn1.Close()
	waitFor(t, 10*time.Second, "the sink to notice the hang-up", func() bool { return !s.Stats().Connected })

	const outage = 5000
	runWithin(t, 10*time.Second, "writing while the collector is down", func() {
		for i := range outage {
			s.Write(testEvent(1000 + i))
		}
	})
	st := s.Stats()
	if st.Dropped != outage-queueLen || st.Queued != queueLen {
		t.Fatalf("during the outage: %+v, want %d dropped and %d queued", st, outage-queueLen, queueLen)
	}
	if st.Errors == 0 {
		t.Fatalf("no errors counted while the collector was down: %+v", st)
	}

	// The collector comes back on the same address.
	ln2 := listenAgain(t, network, addr)
	_, got2 := acceptOne(t, ln2)
	// What the queue held through the outage goes first; only once it is
	// out is there room for new events.
	waitFor(t, 10*time.Second, "the queue to drain after reconnect", func() bool {
		return len(idsReceived(t, got2, true)) == queueLen
	})
	for i := range 10 {
		s.Write(testEvent(100000 + i))
	}
	var want []int
	for i := range queueLen {
		want = append(want, 1000+i) // what the queue held through the outage
	}
	for i := range 10 {
		want = append(want, 100000+i)
	}
	defer func() {
		if t.Failed() {
			t.Logf("collector got %v; stats %+v", idsReceived(t, got2, true), s.Stats())
		}
	}()
	waitFor(t, 10*time.Second, "queued and new events after reconnect", func() bool {
		return len(idsReceived(t, got2, true)) == len(want)
	})
	if ids := idsReceived(t, got2, false); !slices.Equal(ids, want) {
		t.Fatalf("after reconnect the collector got %v\nwant %v", ids, want)
	}
	st = s.Stats()
	if st.Reconnects < 1 || !st.Connected {
		t.Fatalf("after reconnect: %+v", st)
	}
	if total := uint64(10 + outage + 10); st.Written+st.Dropped+uint64(st.Queued) != total {
		t.Fatalf("written %d + dropped %d + queued %d != %d events written", st.Written, st.Dropped, st.Queued, total)
	}
}

func TestTCPCollectorRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	checkCollectorRestart(t, "tcp", addr, "tcp://"+addr)
}

func TestUnixStreamCollectorRestart(t *testing.T) {
	dir, err := os.MkdirTemp("", "sink") // t.TempDir can exceed the 107-byte socket path limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "collector.sock")
	checkCollectorRestart(t, "unix", path, "unix://"+path)
}

func TestTCPStuckPeerNeitherBlocksWriterNorStallsSink(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A peer that accepts and never reads: its socket buffers fill up.
	var stuck []net.Conn
	acceptorDone := make(chan struct{})
	go func() {
		defer close(acceptorDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			stuck = append(stuck, c)
		}
	}()
	defer func() {
		ln.Close()
		<-acceptorDone
		for _, c := range stuck {
			c.Close()
		}
	}()
	s := mustOpen(t, "tcp://"+ln.Addr().String(), Options{QueueLen: 256,
		WriteTimeout: 200 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, CloseTimeout: 100 * time.Millisecond})

	// Write until the sink has given up on the stuck connection and dialled
	// again. Loopback socket buffers hold megabytes, so that takes a while of
	// writing, during which Write must keep returning at once.
	var writes int
	runWithin(t, 60*time.Second, "writing to a stuck peer", func() {
		end := time.Now().Add(30 * time.Second)
		for ; time.Now().Before(end); writes++ {
			s.Write(testEvent(writes))
			if writes%1000 == 0 {
				if st := s.Stats(); st.Errors >= 1 && st.Reconnects >= 1 {
					return
				}
			}
		}
	})
	st := s.Stats()
	if st.Errors < 1 || st.Reconnects < 1 {
		t.Fatalf("after %d writes the sink is still on the stuck connection: %+v", writes, st)
	}
	if st.Dropped == 0 {
		t.Fatalf("nothing dropped with a stuck peer: %+v", st)
	}
	runWithin(t, 10*time.Second, "Close with a stuck peer", func() { s.Close() })
}

func TestTCPUnreachableAtStartIsRetriedAndLoggedSparingly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: dials are refused

	var logs lockedBuffer
	s := mustOpen(t, "tcp://"+addr, Options{MaxBackoff: 20 * time.Millisecond, Logger: zerolog.New(&logs)})
	s.Write(testEvent(1))
	waitFor(t, 10*time.Second, "several failed dials", func() bool { return s.Stats().Errors >= 5 })
	if st := s.Stats(); st.Connected || st.Queued != 1 || !st.Failing || !strings.Contains(st.LastError, "connection refused") {
		t.Fatalf("stats while unreachable: %+v", st)
	}
	warnings := strings.Count(logs.String(), `"level":"warn"`)
	if warnings != 1 {
		t.Fatalf("%d warnings for %d failures within 10s, want 1:\n%s", warnings, s.Stats().Errors, logs.String())
	}
	if !strings.Contains(logs.String(), addr) || !strings.Contains(logs.String(), "connection refused") {
		t.Fatalf("warning does not say which sink or why:\n%s", logs.String())
	}

	ln2 := listenAgain(t, "tcp", addr)
	_, got := acceptOne(t, ln2)
	waitFor(t, 10*time.Second, "the queued event", func() bool { return len(idsReceived(t, got, true)) == 1 })
	waitFor(t, 5*time.Second, "the recovery logged", func() bool { return strings.Contains(logs.String(), "sink delivering again") })
	if st := s.Stats(); st.Reconnects != 0 || st.Written != 1 || st.Failing || st.LastError != "" {
		t.Fatalf("first connection counted as a reconnect, or event not counted: %+v", st)
	}
}

func TestCloseGivesUpOnUnreachablePeerAndCountsTheRest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := Open("tcp://"+addr, Options{MaxBackoff: 20 * time.Millisecond, CloseTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		s.Write(testEvent(i))
	}
	var closeErr error
	runWithin(t, 10*time.Second, "Close", func() { closeErr = s.Close() })
	if closeErr == nil || !strings.Contains(closeErr.Error(), "7 queued events undelivered") {
		t.Fatalf("Close = %v", closeErr)
	}
	if st := s.Stats(); st.Dropped != 7 || st.Queued != 0 {
		t.Fatalf("after Close: %+v", st)
	}
}
