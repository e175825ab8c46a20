package output

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

type levelBuf struct {
	bytes.Buffer
	levels []zerolog.Level
}

func (b *levelBuf) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	b.levels = append(b.levels, l)
	return b.Write(p)
}

func render(t *testing.T, r *tracker.Report) (map[string]any, zerolog.Level) {
	t.Helper()
	var buf levelBuf
	j := NewJSON(&buf, func(ns uint64) time.Time { return time.Unix(0, int64(ns)) })
	j.Write(r)
	line := buf.Bytes()
	if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
		t.Fatalf("not one line: %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, line)
	}
	return m, buf.levels[0]
}

func TestJSONStateEvent(t *testing.T) {
	var c events.Comm
	copy(c[:], "evil\"\n\\\xff")
	ev := events.Event{Cookie: 7, Pid: 42, Comm: c, Owner: events.OwnerAccept, CPUPid: 0, Family: events.IPv6,
		Saddr: netip.MustParseAddr("::1"), Daddr: netip.MustParseAddr("2001:db8::1"), Sport: 443, Dport: 50000,
		Old: events.CloseWait, New: events.LastAck, Netns: 4026531840}
	copy(ev.CPUComm[:], "swapper/0")
	m, lvl := render(t, &tracker.Report{Kind: tracker.ReportState, Ev: &ev, Mono: 1_700_000_000_123_456_789,
		Dur: 1500 * time.Microsecond, HasDur: true, FD: 9, Source: tracker.SourceTracepoint})
	want := map[string]any{
		"event": "state", "time": "2023-11-14T22:13:20.123456789Z", "cookie": 7.0, "pid": 42.0,
		"comm": "evil\"\n\\\ufffd", "owner": "accept", "fd": 9.0, "family": "ipv6", "saddr": "::1", "sport": 443.0,
		"daddr": "2001:db8::1", "dport": 50000.0, "old": "CLOSE_WAIT", "new": "LAST_ACK", "dur_ms": 1.5,
		"source": "tracepoint", "cpu_pid": 0.0, "cpu_comm": "swapper/0", "netns": 4026531840.0, "level": "info",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	for k := range m {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected field %s", k)
		}
	}
	if lvl != zerolog.InfoLevel {
		t.Errorf("level %v", lvl)
	}
}

func TestJSONOmitsUnknowns(t *testing.T) {
	ev := events.Event{Family: events.IPv4, Saddr: netip.MustParseAddr("127.0.0.1"), Daddr: netip.MustParseAddr("127.0.0.1"),
		Old: events.Close, New: events.SynSent}
	m, _ := render(t, &tracker.Report{Kind: tracker.ReportState, Ev: &ev, FD: -1, Source: tracker.SourceTracepoint})
	for _, k := range []string{"fd", "dur_ms", "reason"} {
		if _, ok := m[k]; ok {
			t.Errorf("%s present though unknown", k)
		}
	}
}

func TestJSONFindings(t *testing.T) {
	ev := events.Event{Cookie: 1, Pid: 5, Family: events.IPv4, Saddr: netip.MustParseAddr("10.0.0.1"),
		Daddr: netip.MustParseAddr("10.0.0.2"), Sport: 80, Dport: 1234, Old: events.CloseWait, New: events.CloseWait}
	m, lvl := render(t, &tracker.Report{Kind: tracker.ReportCloseWaitLeak, Ev: &ev, FD: 3, Age: 90 * time.Second,
		AgeLowerBound: true, State: events.CloseWait})
	if m["event"] != "close_wait_leak" || m["age_s"] != 90.0 || m["age_is_lower_bound"] != true || m["fd"] != 3.0 ||
		m["state"] != "CLOSE_WAIT" || lvl != zerolog.WarnLevel {
		t.Errorf("leak: %v level %v", m, lvl)
	}
	if _, ok := m["old"]; ok {
		t.Error("leak event carries old/new")
	}
	p := events.Event{Pid: 5, Family: events.IPv4, Daddr: netip.MustParseAddr("10.0.0.2"), Dport: 443}
	m, lvl = render(t, &tracker.Report{Kind: tracker.ReportTimeWaitPressure, Ev: &p, Count: 20000, PortRange: 28232,
		Peer: netip.MustParseAddrPort("10.0.0.2:443")})
	if m["event"] != "time_wait_pressure" || m["count"] != 20000.0 || m["daddr"] != "10.0.0.2" || lvl != zerolog.WarnLevel {
		t.Errorf("pressure: %v", m)
	}
	for _, k := range []string{"cookie", "sport", "saddr", "fd"} {
		if _, ok := m[k]; ok {
			t.Errorf("pressure event carries %s", k)
		}
	}
}

func TestTextLine(t *testing.T) {
	var buf bytes.Buffer
	tx := NewText(&buf, func(ns uint64) time.Time { return time.Unix(0, int64(ns)).UTC() })
	ev := events.Event{Pid: 42, Family: events.IPv4, Saddr: netip.MustParseAddr("127.0.0.1"), Sport: 40000,
		Daddr: netip.MustParseAddr("127.0.0.1"), Dport: 80, Old: events.TimeWait, New: events.Close}
	copy(ev.Comm[:], "curl")
	tx.Write(&tracker.Report{Kind: tracker.ReportState, Ev: &ev, Dur: 60 * time.Second, HasDur: true, Reason: tracker.ReasonExpired})
	out := buf.String()
	if !strings.HasPrefix(out, "TIME ") || !strings.Contains(out, "127.0.0.1:40000") ||
		!strings.Contains(out, "TIME_WAIT -> CLOSE") || !strings.Contains(out, "60.000s (expired)") || !strings.Contains(out, "curl") {
		t.Errorf("text:\n%s", out)
	}
}
