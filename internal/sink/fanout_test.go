package sink

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestFanoutWritesEverySinkAndADeadOneCostsTheOthersNothing(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, "file:"+filepath.Join(dir, "a.json"), Options{QueueLen: 2000})
	b := mustOpen(t, "file:"+filepath.Join(dir, "b.json"), Options{QueueLen: 2000})
	dead := mustOpen(t, "tcp://"+closedAddr(t), Options{QueueLen: 4, MaxBackoff: 50 * time.Millisecond, CloseTimeout: 100 * time.Millisecond})
	f := NewFanout(a, dead, b)

	log := zerolog.New(f) // the daemon's wiring: zerolog calls WriteLevel
	runWithin(t, 10*time.Second, "1000 events through the fanout", func() {
		for i := range 1000 {
			log.Info().Int("id", i).Send()
		}
	})
	if err := f.Close(); err == nil || !strings.Contains(err.Error(), "undelivered") {
		t.Fatalf("Close = %v, want the dead sink's undelivered events reported", err)
	}
	for _, name := range []string{"a.json", "b.json"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		ids := eventIDs(t, data, false)
		if len(ids) != 1000 || ids[0] != 0 || ids[999] != 999 {
			t.Fatalf("%s got %d events", name, len(ids))
		}
	}
	if st := dead.Stats(); st.Dropped != 1000 || st.Written != 0 {
		t.Fatalf("dead sink stats %+v, want all 1000 dropped", st)
	}
	if st := a.Stats(); st.Dropped != 0 || st.Written != 1000 {
		t.Fatalf("live sink stats %+v", st)
	}
}

func TestFanoutReopenReportsFailuresAndReopensTheRest(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	good := mustOpen(t, "file:"+filepath.Join(dir, "good.json"), Options{})
	bad := mustOpen(t, "file:"+filepath.Join(sub, "bad.json"), Options{MaxBackoff: time.Hour})
	out := mustOpen(t, "stdout", Options{})
	f := NewFanout(good, bad, out)

	os.Rename(filepath.Join(dir, "good.json"), filepath.Join(dir, "good.json.1"))
	os.RemoveAll(sub)
	err := f.Reopen()
	if err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("Reopen = %v, want the failing sink named", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "good.json")); err != nil {
		t.Fatalf("the healthy file sink was not reopened: %v", err)
	}
}

func TestFanoutSinksIsACopy(t *testing.T) {
	s := mustOpen(t, "stdout", Options{})
	f := NewFanout(s)
	got := f.Sinks()
	got[0] = nil
	if f.Sinks()[0] != s {
		t.Fatal("changing the slice from Sinks changed the fanout")
	}
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// discardServer accepts connections and reads them into io.Discard.
func discardServer(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// hotPathSinks are the benchmark's and the allocation test's sinks.
func hotPathSinks(t testing.TB) map[string]*Fanout {
	file := mustOpen(t, "file:"+filepath.Join(t.TempDir(), "bench.json"), Options{})
	tcp := mustOpen(t, "tcp://"+discardServer(t), Options{})
	waitFor(t, 10*time.Second, "the tcp sink to connect", func() bool { return tcp.Stats().Connected })
	return map[string]*Fanout{
		"file":     NewFanout(file),
		"tcp":      NewFanout(tcp),
		"file+tcp": NewFanout(file, tcp),
	}
}

// udpDiscardServer reads datagrams into a reused buffer.
func udpDiscardServer(t testing.TB) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			// Read, not ReadFrom: ReadFrom allocates the sender's address.
			if _, err := pc.(*net.UDPConn).Read(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

func TestWriteDoesNotAllocate(t *testing.T) {
	ev := testEvent(1)
	all := hotPathSinks(t)
	syslogTCP := mustOpen(t, "syslog+tcp://"+discardServer(t), Options{})
	syslogUDP := mustOpen(t, "syslog+udp://"+udpDiscardServer(t), Options{})
	waitFor(t, 10*time.Second, "the syslog sinks to connect", func() bool {
		return syslogTCP.Stats().Connected && syslogUDP.Stats().Connected
	})
	all["syslog+tcp"], all["syslog+udp"] = NewFanout(syslogTCP), NewFanout(syslogUDP)
	for name, f := range all {
		// Let the drainers settle into steady state first.
		for range 10000 {
			f.WriteLevel(zerolog.InfoLevel, ev)
		}
		if n := testing.AllocsPerRun(5000, func() { f.WriteLevel(zerolog.InfoLevel, ev) }); n != 0 {
			t.Errorf("%s: %v allocations per Write, want 0", name, n)
		}
		// The drainers too: count every allocation in the process while
		// events are written and delivered. A few are the runtime's own and
		// do not grow with the events: it refills its cache of channel-wait
		// records after each GC, and arms a socket's deadline timer once.
		const events = 10000
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range events / 500 {
			for range 500 {
				f.WriteLevel(zerolog.InfoLevel, ev)
			}
			waitDrained(f)
		}
		runtime.ReadMemStats(&after)
		if n := after.Mallocs - before.Mallocs; n > events/500 {
			t.Errorf("%s: %d allocations while writing and delivering %d events, want about none", name, n, events)
		}
	}
}

// BenchmarkFanoutWrite measures the hot path: Write of a ~300-byte event
// to a file sink, a tcp sink, and both. "queued" keeps the queue from
// filling (it pauses the clock to let the sinks drain every 1024 events),
// so every event is copied; "saturated" writes flat out, so most events
// hit a full queue and are dropped, which is the cheapest path.
func BenchmarkFanoutWrite(b *testing.B) {
	ev := testEvent(1)
	if len(ev) < 280 || len(ev) > 320 {
		b.Fatalf("test event is %d bytes, want a typical ~300", len(ev))
	}
	const burst = 1024 // well under the default queue of 4096
	for _, mode := range []string{"queued", "saturated"} {
		for _, name := range []string{"file", "tcp", "file+tcp"} {
			b.Run(mode+"/"+name, func(b *testing.B) {
				f := hotPathSinks(b)[name]
				b.ReportAllocs()
				b.SetBytes(int64(len(ev)))
				b.ResetTimer()
				for i := range b.N {
					if mode == "queued" && i%burst == 0 {
						b.StopTimer()
						waitDrained(f)
						b.StartTimer()
					}
					f.WriteLevel(zerolog.InfoLevel, ev)
				}
				b.StopTimer()
				var dropped uint64
				for _, s := range f.Sinks() {
					dropped += s.Stats().Dropped
				}
				b.ReportMetric(float64(dropped)/float64(b.N), "drops/op")
			})
		}
	}
}

func waitDrained(f *Fanout) {
	for _, s := range f.sinks {
		for s.Stats().Queued > 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
}
