package e2e

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func eventTime(t *testing.T, e Event) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		t.Fatalf("event time %q: %v", e.Time, err)
	}
	return ts
}

// twConn is one client-closes-first connection whose client side is in
// TIME_WAIT.
type twConn struct {
	server, client *Peer
	port, local    int   // the server's port, the client's
	entry          Event // the client's FIN_WAIT2>TIME_WAIT
}

// clientTimeWait makes one client-closes-first connection and returns it
// with the client's FIN_WAIT2>TIME_WAIT event.
func clientTimeWait(t *testing.T, d *Daemon, h *Host) twConn {
	c := twConn{server: h.StartPeer(t), client: h.StartPeer(t)}
	c.port = c.server.Port("listen tcp4 127.0.0.1:0")
	c.local = oneConnection(c.server, c.client, "tcp4", c.port)
	evs := d.WaitFor("FIN_WAIT2>TIME_WAIT", 10*time.Second, func(evs []Event) bool {
		return lastSteps(c.port, "FIN_WAIT2>TIME_WAIT")(h.Only(evs))
	})
	for _, e := range onPort(h.Only(evs), c.port) {
		if e.New == "TIME_WAIT" {
			c.entry = e
		}
	}
	if c.entry.Pid != c.client.Pid {
		t.Fatalf("TIME_WAIT entry %s: owner %d, want the client %d", c.entry, c.entry.Pid, c.client.Pid)
	}
	return c
}

// liveTimeWait is clientTimeWait, but the TIME_WAIT must still be the
// kernel's after wait: if the kernel ended it first (kernelview_test.go
// says how that happens), the daemon must have said so, and the scenario
// is made again, at most three times.
func liveTimeWait(t *testing.T, d *Daemon, h *Host, wait time.Duration) twConn {
	t.Helper()
	for attempt := 1; ; attempt++ {
		before := h.tcpCounters(t)
		c := clientTimeWait(t, d, h)
		time.Sleep(wait)
		checkedFrom := time.Now()
		if h.heldTimeWait(t, c.local, c.port) {
			return c
		}
		checkedAt := time.Now()
		causes := earlyEndCauses(before, h.tcpCounters(t))
		exit := exitOf(t, d, c.entry, 5*time.Second)
		timeWaitVerdict(t, false, checkedFrom, checkedAt, &exit, causes)
		if attempt == 3 {
			t.Fatalf("the kernel ended the TIME_WAIT early %d times in a row (%s)", attempt, causes)
		}
	}
}

// exitOf waits for the TIME_WAIT>CLOSE of the socket that entered it.
func exitOf(t *testing.T, d *Daemon, entry Event, timeout time.Duration) Event {
	t.Helper()
	var exit Event
	d.WaitFor("TIME_WAIT>CLOSE", timeout, func(evs []Event) bool {
		for _, e := range evs {
			if e.Event == "state" && e.Cookie == entry.Cookie && e.Old == "TIME_WAIT" {
				exit = e
				return true
			}
		}
		return false
	})
	if exit.Pid != entry.Pid || exit.New != "CLOSE" || exit.Sport != entry.Sport || exit.Dport != entry.Dport ||
		exit.Saddr != entry.Saddr || exit.Daddr != entry.Daddr || exit.Netns != entry.Netns || exit.DurMs == nil {
		t.Fatalf("exit %+v does not continue entry %+v", exit, entry)
	}
	return exit
}

// Ended early with ss -K: the exit carries the time actually spent.
func TestTimeWaitKilled(t *testing.T) { onHosts(t, timeWaitKilled) }

func timeWaitKilled(t *testing.T, h *Host) {
	d := StartDaemon(t)
	c := liveTimeWait(t, d, h, 1500*time.Millisecond)
	port, entry := c.port, c.entry
	// The kill happens somewhere while ss runs: starting ss alone can take
	// a few hundred ms under qemu TCG.
	before := time.Now()
	out, err := h.Command("ss", "-K", "-tn", "state", "time-wait", fmt.Sprintf("( dport = :%d )", port)).CombinedOutput()
	after := time.Now()
	if n := h.ssCount(t, "time-wait", port); n != 0 {
		t.Fatalf("ss -K left %d TIME_WAIT sockets (%v: %s)", n, err, out)
	}
	exit := exitOf(t, d, entry, 5*time.Second)
	if exit.Reason != "ended_early" {
		t.Errorf("reason %q, want ended_early", exit.Reason)
	}
	const slack = 50 * time.Millisecond
	entered := eventTime(t, entry)
	if got := time.Duration(*exit.DurMs * float64(time.Millisecond)); got < before.Sub(entered)-slack || got > after.Sub(entered)+slack {
		t.Errorf("dur_ms %v, but the socket spent %v to %v in TIME_WAIT", got, before.Sub(entered), after.Sub(entered))
	}
	if at := eventTime(t, exit); at.Before(before.Add(-slack)) || at.After(after.Add(slack)) {
		t.Errorf("exit dated %v after ss -K started, which ran for %v", at.Sub(before), after.Sub(before))
	}
}

// A TIME_WAIT the kernel ends on its own: one stray segment towards it
// while its peer's port has only the listener left (RFC 1337's TIME-WAIT
// assassination, kernelview_test.go). The daemon says when, and why.
func TestTimeWaitAssassinated(t *testing.T) { onHosts(t, timeWaitAssassinated) }

func timeWaitAssassinated(t *testing.T, h *Host) {
	d := StartDaemon(t)
	c := liveTimeWait(t, d, h, 0)
	counters := h.tcpCounters(t)
	server, client, port, local, entry := c.server, c.client, c.port, c.local, c.entry
	before := time.Now()
	server.Do("stray %d %d", port, local)
	// The RST may be handled in ksoftirqd, later than the send: the end
	// lies between the send and when ss no longer shows the socket.
	var gone time.Time
	eventually(t, "the kernel ends the TIME_WAIT", 2*time.Second, func() error {
		if h.heldTimeWait(t, local, port) {
			return fmt.Errorf("still held")
		}
		gone = time.Now()
		return nil
	})
	if now := h.tcpCounters(t); now["Tcp:OutRsts"] <= counters["Tcp:OutRsts"] {
		t.Errorf("counted: %s; want the listener's RST", earlyEndCauses(counters, now))
	}
	exit := exitOf(t, d, entry, 5*time.Second)
	if exit.Reason != "ended_early" || exit.Pid != client.Pid {
		t.Errorf("exit %s: want ended_early, owned by the client %d", exit, client.Pid)
	}
	const slack = 50 * time.Millisecond
	if at := eventTime(t, exit); at.Before(before.Add(-slack)) || at.After(gone.Add(slack)) {
		t.Errorf("exit dated %v after the stray segment was sent; ss saw it gone %v after", at.Sub(before), gone.Sub(before))
	}
}

// A TIME_WAIT that runs its course: 60 s (TCP_TIMEWAIT_LEN), plus the
// timer wheel's slack at that range.
func TestTimeWaitExpires(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 60 s for a TIME_WAIT to expire; not in -short")
	}
	d := StartDaemon(t)
	h := ownHost(t)
	var port, local int
	var entry Event
	var gone time.Time
	for attempt := 1; gone.IsZero(); attempt++ {
		before := h.tcpCounters(t)
		c := clientTimeWait(t, d, h)
		port, local, entry = c.port, c.local, c.entry
		// Watch the kernel's own view for when the socket goes away.
		deadline := time.Now().Add(75 * time.Second)
		for time.Now().Before(deadline) && gone.IsZero() {
			if !h.heldTimeWait(t, local, port) {
				gone = time.Now()
			}
			time.Sleep(100 * time.Millisecond)
		}
		if gone.IsZero() {
			t.Fatal("TIME_WAIT socket still there after 75 s")
		}
		if gone.Sub(eventTime(t, entry)) < 59*time.Second {
			// The kernel ended it early: held to that, then again.
			causes := earlyEndCauses(before, h.tcpCounters(t))
			exit := exitOf(t, d, entry, 5*time.Second)
			timeWaitVerdict(t, false, gone.Add(-100*time.Millisecond), gone, &exit, causes)
			if attempt == 2 {
				t.Fatalf("the kernel ended the TIME_WAIT early twice (%s)", causes)
			}
			gone = time.Time{}
		}
	}
	exit := exitOf(t, d, entry, 5*time.Second)
	if exit.Reason != "expired" {
		t.Errorf("reason %q, want expired", exit.Reason)
	}
	dur := time.Duration(*exit.DurMs * float64(time.Millisecond))
	if dur < 60*time.Second || dur > 66*time.Second {
		t.Errorf("TIME_WAIT lasted %v, want 60 s plus timer slack", dur)
	}
	if gap := gone.Sub(eventTime(t, exit)); gap < -100*time.Millisecond || gap > time.Second {
		t.Errorf("exit event dated %v before ss saw the socket go", gap)
	}
	if got := eventTime(t, exit).Sub(eventTime(t, entry)); math.Abs(float64(got-dur)) > float64(time.Millisecond) {
		t.Errorf("exit - entry = %v, dur_ms = %v", got, dur)
	}
}

// Clients whose peer never closes: orphaned FIN_WAIT2 in timewait sockets,
// shown as FIN_WAIT2 (not TIME_WAIT), reported stuck past the threshold
// once the kernel's socket table confirms it, in the daemon's own network
// namespace and in another.
func TestOrphanedFinWait2(t *testing.T) { onHosts(t, orphanedFinWait2) }

func orphanedFinWait2(t *testing.T, h *Host) {
	d := StartDaemon(t, "--fin-wait2-threshold", "1s")
	_, client, port := leakyServer(t, h)
	eventually(t, "clients in FIN_WAIT2, held by timewait sockets", 10*time.Second, func() error {
		socks := d.Sockets("FIN_WAIT2", port)
		if len(socks) != leakN {
			return fmt.Errorf("%d FIN_WAIT2 sockets, want %d", len(socks), leakN)
		}
		for _, s := range socks {
			if s.Pid != client.Pid || s.FD != nil || s.Dport != port {
				return fmt.Errorf("FIN_WAIT2 socket %+v: want client %d, no fd", s, client.Pid)
			}
		}
		return nil
	})
	evs := d.WaitFor("stuck FIN_WAIT2 events", 10*time.Second, func(evs []Event) bool {
		n := 0
		for _, e := range evs {
			if e.Event == "stuck" && e.Dport == port {
				n++
			}
		}
		return n >= leakN
	})
	for _, e := range evs {
		if e.Event == "stuck" && e.Dport == port && (e.State != "FIN_WAIT2" || e.Pid != client.Pid || e.AgeS < 1) {
			t.Errorf("stuck event %+v", e)
		}
	}
	for _, e := range onPort(evs, port) {
		if e.Pid == client.Pid && (e.New == "TIME_WAIT" || e.New == "CLOSE") {
			t.Errorf("client socket went %s>%s though the server never sent FIN", e.Old, e.New)
		}
		if e.Source == "inferred" {
			t.Errorf("inferred change of a socket the kernel holds in FIN_WAIT2: %s", e)
		}
	}
	if strings.Contains(d.stderr.String(), "sock_diag") {
		t.Errorf("the kernel's socket table could not be asked:\n%s", d.stderr.String())
	}
}

// Many TIME_WAIT towards one peer: one time_wait_pressure event naming the
// process and the peer.
func TestTimeWaitPressure(t *testing.T) {
	needKernel(t)
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Fatal(err)
	}
	var lo, hi int
	fmt.Sscan(strings.TrimSpace(string(b)), &lo, &hi)
	const n = 12
	share := 10.5 / float64(hi-lo+1) // past 10 sockets
	d := StartDaemon(t, "--time-wait-share", fmt.Sprint(share))
	server, client := StartPeer(t), StartPeer(t)
	port := server.Port("listen tcp4 127.0.0.1:0")
	mine := map[int]bool{}
	for i := 0; i < n; i++ {
		mine[oneConnection(server, client, "tcp4", port)] = true
	}
	d.WaitFor("time_wait_pressure", 10*time.Second, func(evs []Event) bool {
		for _, e := range evs {
			if e.Event == "time_wait_pressure" && e.Dport == port {
				return true
			}
		}
		return false
	})
	time.Sleep(1500 * time.Millisecond) // a second report would come within a tick
	var got []Event
	for _, e := range d.ReadEvents() {
		if e.Event == "time_wait_pressure" && e.Dport == port {
			got = append(got, e)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d time_wait_pressure events, want 1:\n%s", len(got), dump(got))
	}
	e := got[0]
	if e.Pid != client.Pid || e.Daddr != "127.0.0.1" || e.Count < 11 || e.PortRng != hi-lo+1 {
		t.Errorf("pressure event %+v: want pid %d, peer 127.0.0.1:%d, count >= 11 of %d", e, client.Pid, port, hi-lo+1)
	}
	// Each connection entered TIME_WAIT, but the kernel may end one early
	// (under qemu TCG one was gone from ss 2 ms after its entry, and the
	// daemon said so): hold the daemon to what the kernel still has of
	// these connections. Only these: an earlier test's TIME_WAIT can sit
	// on the same port number (a listener may bind a port that only
	// TIME_WAIT sockets hold; one did in a 6.12 guest).
	inKernel := ssTimeWaitFrom(t, port, mine)
	var found bool
	for _, p := range d.Processes() {
		if p.Pid == client.Pid {
			found = true
			if p.TimeWait != inKernel || p.Time["FIN_WAIT2"].Count != n {
				t.Errorf("client process view: %d TIME_WAIT (the kernel has %d), FIN_WAIT2 time count %d; want %d", p.TimeWait, inKernel, p.Time["FIN_WAIT2"].Count, n)
			}
		}
	}
	if !found {
		t.Errorf("client %d not in /api/v1/processes", client.Pid)
	}
}

// A TIME_WAIT from before the daemon started is found by the start-up
// snapshot (in a namespace of its own, the snapshot must enter it) and
// followed to its end: streamed with --stream-preexisting-ends, and by
// default only its row goes.
func TestTimeWaitBeforeStart(t *testing.T) {
	for _, stream := range []bool{true, false} {
		name := "quiet"
		if stream {
			name = "streamed"
		}
		t.Run(name, func(t *testing.T) {
			onHosts(t, func(t *testing.T, h *Host) { timeWaitBeforeStart(t, h, stream) })
		})
	}
}

func timeWaitBeforeStart(t *testing.T, h *Host, stream bool) {
	needKernel(t)
	for attempt := 1; ; attempt++ {
		if timeWaitBeforeStartOnce(t, h, stream) || t.Failed() {
			return
		}
		// The kernel ended the TIME_WAIT before the check: make another.
		if attempt == 3 {
			t.Fatalf("the kernel ended the TIME_WAIT early %d times in a row", attempt)
		}
	}
}

// timeWaitBeforeStartOnce returns false when the kernel ended the
// TIME_WAIT before the daemon could be checked against it.
func timeWaitBeforeStartOnce(t *testing.T, h *Host, stream bool) bool {
	server, client := h.StartPeer(t), h.StartPeer(t)
	port := server.Port("listen tcp4 127.0.0.1:0")
	local := oneConnection(server, client, "tcp4", port)
	// The client's timewait socket goes FIN_WAIT2 -> TIME_WAIT when the
	// server's FIN arrives; the kernel may also end it early at once.
	held := false
	for end := time.Now().Add(2 * time.Second); !held && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		held = h.heldTimeWait(t, local, port)
	}
	if !held {
		t.Logf("ss shows no TIME_WAIT from port %d to %d: the kernel ended it before the daemon started", local, port)
		return false
	}
	var flags []string
	if stream {
		flags = append(flags, "--stream-preexisting-ends")
	}
	d := StartDaemon(t, flags...)
	defer d.Stop()
	var row APISocket
	eventually(t, "the API lists the TIME_WAIT", 5*time.Second, func() error {
		socks := h.OnlySockets(d.Sockets("TIME_WAIT", port))
		if len(socks) == 1 || !h.heldTimeWait(t, local, port) {
			row = APISocket{}
			if len(socks) == 1 {
				row = socks[0]
			}
			return nil
		}
		return fmt.Errorf("%d TIME_WAIT rows, want 1: %+v", len(socks), socks)
	})
	if !h.heldTimeWait(t, local, port) {
		return false
	}
	if row.Cookie == 0 {
		t.Fatalf("the kernel holds the TIME_WAIT from port %d, the API does not list it", local)
	}
	if row.Sport != local || row.Dport != port || !row.AgeLowerBound || row.Saddr != "127.0.0.1" {
		t.Errorf("row %+v: want 127.0.0.1:%d -> :%d, age a lower bound", row, local, port)
	}
	out, err := h.Command("ss", "-K", "-tn", "state", "time-wait", fmt.Sprintf("( dport = :%d )", port)).CombinedOutput()
	if h.heldTimeWait(t, local, port) {
		t.Fatalf("ss -K left the TIME_WAIT (%v: %s)", err, out)
	}
	eventually(t, "the row goes with the TIME_WAIT", 2*time.Second, func() error {
		if socks := h.OnlySockets(d.Sockets("TIME_WAIT", port)); len(socks) != 0 {
			return fmt.Errorf("rows left after the end: %+v", socks)
		}
		return nil
	})
	ofRow := func(evs []Event) (ends []Event) {
		for _, e := range evs {
			if e.Cookie == row.Cookie {
				ends = append(ends, e)
			}
		}
		return ends
	}
	var ends []Event
	if stream {
		ends = ofRow(d.WaitFor("the end of the TIME_WAIT", 5*time.Second, func(evs []Event) bool { return len(ofRow(evs)) > 0 }))
	} else {
		time.Sleep(300 * time.Millisecond) // what the sinks hold is written by then
		ends = ofRow(d.ReadEvents())
	}
	if !stream {
		if len(ends) != 0 {
			t.Errorf("the end of a TIME_WAIT from before the start was streamed without --stream-preexisting-ends:\n%s", dump(ends))
		}
		return true
	}
	if len(ends) != 1 {
		t.Fatalf("%d events for the TIME_WAIT, want its end:\n%s", len(ends), dump(ends))
	}
	if e := ends[0]; e.Old != "TIME_WAIT" || e.New != "CLOSE" || e.Reason != "ended_early" || e.Netns != h.Netns ||
		e.Sport != local || e.Dport != port || e.Saddr != "127.0.0.1" {
		t.Errorf("event %s (netns %d): want TIME_WAIT>CLOSE ended_early in netns %d", e, e.Netns, h.Netns)
	}
	return true
}

// More TIME_WAITs before the start than the daemon follows: the ones it
// does not follow get no row (a count says how many), the rest are
// followed to their end, and no finding fires for any of them.
func TestManyTimeWaitsBeforeStart(t *testing.T) {
	needKernel(t)
	h := NewNetns(t) // only this test's TIME_WAITs in it
	server, client := h.StartPeer(t), h.StartPeer(t)
	port := server.Port("listen tcp4 127.0.0.1:0")
	const n = 600 // --max-timewait 1024 follows 512 from before the start
	client.Port("connect tcp4 127.0.0.1:%d %d", port, n)
	server.Do("accept %d", n)
	client.Do("close")
	server.Do("close")
	// The kernel may end a few early (kernelview_test.go): count what it
	// holds once the last FINs are through.
	var held int
	eventually(t, "ss shows the TIME_WAITs", 10*time.Second, func() error {
		before := held
		time.Sleep(time.Second)
		if held = h.ssCount(t, "time-wait", port); held <= 512 || held != before {
			return fmt.Errorf("ss counts %d TIME_WAIT of %d connections (%d a second before)", held, n, before)
		}
		return nil
	})
	d := StartDaemon(t, "--max-timewait", "1024")
	var health struct {
		Skipped uint64 `json:"timewait_preexisting_skipped"`
	}
	d.get("/healthz", nil, &health)
	rows := len(h.OnlySockets(d.Sockets("TIME_WAIT", port)))
	if rows == 0 || rows > 512 || rows+int(health.Skipped) < held {
		t.Errorf("%d rows and %d unfollowed counted for %d TIME_WAITs, of which at most 512 are followed", rows, health.Skipped, held)
	}
	// Their end, as the kernel makes it, empties the table in a second.
	if out, err := h.Command("ss", "-K", "-tn", "state", "time-wait", fmt.Sprintf("( dport = :%d )", port)).CombinedOutput(); err != nil {
		t.Fatalf("ss -K: %v: %s", err, out)
	}
	if got := h.ssCount(t, "time-wait", port); got != 0 {
		t.Fatalf("ss -K left %d TIME_WAITs", got)
	}
	eventually(t, "the table agrees with ss", 1500*time.Millisecond, func() error {
		if rows := h.OnlySockets(d.Sockets("TIME_WAIT", port)); len(rows) != 0 {
			return fmt.Errorf("%d TIME_WAIT rows left, ss has none", len(rows))
		}
		return nil
	})
	// tcpstated sockets and the metrics say the same as the API.
	out, errOut, code := run(t, "sockets", "--addr", d.Socket, "--state", "TIME_WAIT", "--port", fmt.Sprint(port))
	if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("tcpstated sockets after the end (exit %d): %s%s", code, out, errOut)
	}
	// Other TIME_WAITs of the host may end between the two reads.
	eventually(t, "the metrics and the API agree", 5*time.Second, func() error {
		all := len(d.Sockets("TIME_WAIT", 0))
		if got := metricSum(t, d, `tcpstated_sockets{state="TIME_WAIT"`); got != all {
			return fmt.Errorf("metrics count %d TIME_WAIT sockets, the API %d", got, all)
		}
		return nil
	})
	for _, e := range d.ReadEvents() {
		if e.Event == "time_wait_pressure" || (e.Event == "state" && e.Netns == h.Netns && e.Dport == port) {
			t.Errorf("event for a TIME_WAIT from before the start: %s", e)
		}
	}
}

// metricSum adds up the daemon's /metrics samples whose line starts with
// prefix (a family and the first labels).
func metricSum(t *testing.T, d *Daemon, prefix string) int {
	t.Helper()
	resp, err := http.Get("http://" + d.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			n += int(v)
		}
	}
	return n
}
