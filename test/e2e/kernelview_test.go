package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// What the kernel says about a scenario's sockets, to hold the daemon to.
//
// A TIME_WAIT does not always last its 60 s. One stray segment ends it
// when its peer's port has nothing but a listener (or nothing) left: the
// TIME_WAIT socket answers with an ACK, the listener answers that with an
// RST whose sequence number is exactly in window, and an RST ends a
// TIME_WAIT unless net.ipv4.tcp_rfc1337 is set (RFC 1337's "TIME-WAIT
// assassination"; shown on loopback with one raw ACK, docs/kernels.md). In
// a qemu guest on a busy host the stray segment comes by itself: the
// client's final ACK waits on a stalled vCPU, the server retransmits its
// FIN (a tail loss probe fires after 10 ms), and the retransmission meets
// the TIME_WAIT after the server's socket got the first ACK and closed.
// A new connection on the same 4-tuple (tcp_tw_reuse, on for loopback)
// ends one too.

// heldTimeWait says whether the kernel still holds the TIME_WAIT of the
// connection from local port local to port.
func (h *Host) heldTimeWait(t *testing.T, local, port int) bool {
	t.Helper()
	return len(h.ssRows(t, "time-wait", fmt.Sprintf("( sport = :%d and dport = :%d )", local, port))) > 0
}

// tcpCounters reads the host's TCP counters (Tcp: and TcpExt: of
// /proc/net/snmp and /proc/net/netstat, which are per network namespace).
func (h *Host) tcpCounters(t *testing.T) map[string]int64 {
	t.Helper()
	out, err := h.Command("cat", "/proc/net/snmp", "/proc/net/netstat").Output()
	if err != nil {
		t.Fatalf("TCP counters: %v", err)
	}
	c := map[string]int64{}
	lines := strings.Split(string(out), "\n")
	for i := 0; i+1 < len(lines); i++ {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || len(keys) != len(vals) || keys[0] != vals[0] || (keys[0] != "Tcp:" && keys[0] != "TcpExt:") {
			continue
		}
		for j := 1; j < len(keys); j++ {
			var n int64
			if _, err := fmt.Sscan(vals[j], &n); err == nil {
				c[keys[0]+keys[j]] = n
			}
		}
		i++
	}
	return c
}

// earlyEndCauses says what the kernel counted between two readings that
// can end a TIME_WAIT early.
func earlyEndCauses(before, after map[string]int64) string {
	var parts []string
	for _, k := range []string{"Tcp:OutRsts", "Tcp:RetransSegs", "TcpExt:TCPLossProbes", "TcpExt:TWRecycled", "TcpExt:TCPTimeWaitOverflow"} {
		if d := after[k] - before[k]; d != 0 {
			parts = append(parts, fmt.Sprintf("%s +%d", k, d))
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "no RST, retransmission or reuse counted"
	}
	return strings.Join(parts, ", ")
}

// timeWaitVerdict compares what the daemon said of one TIME_WAIT with the
// kernel: checked at checkedAt, the kernel held it or not. A TIME_WAIT the
// kernel still held may not be reported ended before the check; one it no
// longer held must be reported ended early, before the check.
func timeWaitVerdict(t *testing.T, held bool, checkedFrom, checkedAt time.Time, exit *Event, causes string) {
	t.Helper()
	switch {
	case held && exit != nil && eventTime(t, *exit).Before(checkedFrom):
		t.Errorf("the daemon ended a TIME_WAIT the kernel still held: %s (checked %v later)", exit, checkedFrom.Sub(eventTime(t, *exit)))
	case !held && exit == nil:
		t.Errorf("the kernel ended the TIME_WAIT (%s) and the daemon did not say so", causes)
	case !held && (exit.Reason != "ended_early" || eventTime(t, *exit).After(checkedAt)):
		t.Errorf("the kernel ended the TIME_WAIT (%s) before %v; the daemon said %s", causes, checkedAt, exit)
	case !held:
		t.Logf("the kernel ended the TIME_WAIT early (%s); the daemon said so: %s", causes, exit)
	}
}
