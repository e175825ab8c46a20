package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Filters: only the transitions asked for reach the stream.
func TestKernelFilters(t *testing.T) {
	server, otherServer, client := StartPeer(t), StartPeer(t), StartPeer(t)
	needKernel(t)
	port := server.Port("listen tcp4 127.0.0.1:0")
	other := otherServer.Port("listen tcp4 127.0.0.1:0") // filtered out by port
	d := StartDaemon(t, "--port", fmt.Sprint(port), "--state", "TIME_WAIT,FIN_WAIT1", "--pid", fmt.Sprint(client.Pid))
	client.Port("connect tcp4 127.0.0.1:%d", other)
	otherServer.Do("accept")
	h := ownHost(t)
	before := h.tcpCounters(t)
	local := oneConnection(server, client, "tcp4", port)
	d.WaitFor("client's FIN_WAIT2>TIME_WAIT", 10*time.Second, lastSteps(port, "FIN_WAIT2>TIME_WAIT"))
	time.Sleep(300 * time.Millisecond)
	checkedFrom := time.Now()
	held := h.heldTimeWait(t, local, port)
	checkedAt := time.Now()
	causes := earlyEndCauses(before, h.tcpCounters(t))
	time.Sleep(300 * time.Millisecond) // the poll reports an early end within ~100 ms
	evs := d.ReadEvents()
	var got, lines []string
	var exit *Event
	for _, e := range evs {
		if e.Event != "state" {
			continue
		}
		if e.Sport != port && e.Dport != port {
			t.Errorf("event on another port: %s", e)
		}
		if e.Pid != client.Pid {
			t.Errorf("event of another process: %s", e)
		}
		if e.Old == "TIME_WAIT" {
			exit = &e
			continue
		}
		got = append(got, e.Old+">"+e.New)
		lines = append(lines, e.String())
	}
	want := "ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>TIME_WAIT"
	if strings.Join(got, " ") != want {
		t.Errorf("filtered stream: %s\nwant %s\nevents:\n%s", strings.Join(got, " "), want, strings.Join(lines, "\n"))
	}
	// Its end, if any, only as the kernel made it.
	timeWaitVerdict(t, held, checkedFrom, checkedAt, exit, causes)
}

func TestFamilyFilter(t *testing.T) {
	d := StartDaemon(t, "--family", "ipv6")
	server, server6, client := StartPeer(t), StartPeer(t), StartPeer(t)
	p4 := server.Port("listen tcp4 127.0.0.1:0")
	p6 := server6.Port("listen tcp6 [::1]:0")
	client.Port("connect tcp4 127.0.0.1:%d", p4)
	client.Port("connect tcp6 [::1]:%d", p6)
	d.WaitFor("IPv6 handshake", 10*time.Second, lastSteps(p6, "SYN_SENT>ESTABLISHED"))
	time.Sleep(200 * time.Millisecond)
	for _, e := range d.ReadEvents() {
		if e.Event == "state" && e.Family != "ipv6" {
			t.Errorf("ipv4 event with --family ipv6: %s", e)
		}
	}
}

// Loss is counted, never hidden: a ring buffer too small for a burst
// loses records, and the summary and the log say how many; every record
// the kernel did queue was read.
func TestLossIsCounted(t *testing.T) {
	d := StartDaemon(t, "--ring-size", "4096", "--poll-interval", "5s")
	server, client := StartPeer(t), StartPeer(t)
	port := server.Port("listen tcp4 127.0.0.1:0")
	client.Port("connect tcp4 127.0.0.1:%d 200", port)
	server.Do("accept 200")
	client.Do("close")
	server.Do("close")
	time.Sleep(200 * time.Millisecond)
	stderr := d.Stop()
	var summary string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, `"tcpstated stopped"`) {
			summary = line
		}
	}
	if summary == "" {
		t.Fatalf("no summary:\n%s", stderr)
	}
	var lost, records, submitted uint64
	for _, f := range []struct {
		key string
		v   *uint64
	}{{`"lost":`, &lost}, {`"records":`, &records}, {`"submitted":`, &submitted}} {
		i := strings.Index(summary, f.key)
		if i < 0 {
			t.Fatalf("summary has no %s: %s", f.key, summary)
		}
		fmt.Sscan(summary[i+len(f.key):], f.v)
	}
	if lost == 0 {
		t.Fatalf("a 4 KiB ring buffer lost nothing in a burst of 200 connections: %s", summary)
	}
	if records != submitted {
		t.Errorf("read %d records, the kernel queued %d: %s", records, submitted, summary)
	}
	if !strings.Contains(stderr, "ring buffer full") {
		t.Errorf("loss not logged while running:\n%s", stderr)
	}
}
