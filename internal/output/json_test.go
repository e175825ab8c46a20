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
	p := events.Event{Pid: 5, Family: events.IPv4, Saddr: netip.MustParseAddr("10.0.0.1"), Daddr: netip.MustParseAddr("10.0.0.2"), Dport: 443}
	m, lvl = render(t, &tracker.Report{Kind: tracker.ReportTimeWaitPressure, Ev: &p, Count: 20000, PortRange: 28232,
		Peer: netip.MustParseAddrPort("10.0.0.2:443")})
	if m["event"] != "time_wait_pressure" || m["count"] != 20000.0 || m["saddr"] != "10.0.0.1" || m["daddr"] != "10.0.0.2" || lvl != zerolog.WarnLevel {
		t.Errorf("pressure: %v", m)
	}
	for _, k := range []string{"cookie", "sport", "fd"} {
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

// zerologWrite is the event encoder written with zerolog's Event, field by
// field: the reference the fast encoder must match byte for byte.
func zerologWrite(log zerolog.Logger, ts string, r *tracker.Report) {
	ev := r.Ev
	e := log.WithLevel(level(r.Kind))
	e.Str(FieldEvent, r.Kind.String()).Str(FieldTime, ts)
	if r.Kind == tracker.ReportTimeWaitPressure {
		e.Uint32(FieldPid, ev.Pid).Bytes(FieldComm, ev.Comm.Bytes()).Str(FieldFamily, ev.Family.String()).
			Str(FieldSaddr, addrString(ev.Saddr)).Str(FieldDaddr, ev.Daddr.String()).Uint16(FieldDport, ev.Dport).
			Int(FieldCount, r.Count).Int(FieldPortRange, r.PortRange).
			Float64(FieldShare, float64(r.Count)/float64(r.PortRange))
		e.Send()
		return
	}
	e.Uint64(FieldCookie, ev.Cookie).Uint32(FieldPid, ev.Pid).Bytes(FieldComm, ev.Comm.Bytes()).
		Str(FieldOwner, ev.Owner.String())
	if r.FD >= 0 {
		e.Int32(FieldFD, r.FD)
	}
	e.Str(FieldFamily, ev.Family.String())
	if ev.Saddr.IsValid() {
		e.Str(FieldSaddr, ev.Saddr.String())
	}
	e.Uint16(FieldSport, ev.Sport)
	if ev.Daddr.IsValid() {
		e.Str(FieldDaddr, ev.Daddr.String())
	}
	e.Uint16(FieldDport, ev.Dport)
	switch r.Kind {
	case tracker.ReportState:
		e.Str(FieldOld, ev.Old.String()).Str(FieldNew, ev.New.String())
		if r.HasDur {
			e.RawJSON(FieldDurMs, appendMillis(nil, r.Dur))
		}
		e.Str(FieldSource, r.Source.String())
		if r.Reason != "" {
			e.Str(FieldReason, r.Reason)
		}
		e.Uint32(FieldCPUPid, ev.CPUPid).Bytes(FieldCPUComm, ev.CPUComm.Bytes())
	case tracker.ReportCloseWaitLeak, tracker.ReportCloseWaitResolved, tracker.ReportStuck:
		e.Str(FieldState, r.State.String()).Float64(FieldAgeS, r.Age.Seconds()).Bool(FieldAgeLB, r.AgeLowerBound)
	case tracker.ReportConnection:
		c := r.Conn
		e.Str(FieldRole, c.Role.String()).Str(FieldEnd, c.End)
		if c.ClosedFirst != "" {
			e.Str(FieldClosedFirst, c.ClosedFirst)
		}
		if !c.TimeWaitUnknown {
			e.Bool(FieldTimeWait, c.TimeWait)
		}
		if c.HasHandshake {
			e.RawJSON(FieldHandshakeMs, appendMillis(nil, c.Handshake))
		}
		e.RawJSON(FieldLifeMs, appendMillis(nil, c.Life)).Bool(FieldLifeLB, c.LifeLowerBound)
		if c.HasTotals {
			e.Uint64(FieldBytesSent, c.BytesSent).Uint64(FieldBytesRecv, c.BytesReceived)
			e.RawJSON(FieldSRTTMs, appendMillis(nil, c.SRTT)).Uint32(FieldRetransmits, c.Retransmits)
		}
		states := zerolog.Dict()
		for _, st := range c.Steps[:c.N] {
			states.RawJSON(st.State.String(), appendMillis(nil, st.Dur))
		}
		e.Dict(FieldStatesMs, states)
	case tracker.ReportReset:
		e.Str(FieldDirection, r.Reset).Str(FieldState, r.State.String())
		e.Uint32(FieldCPUPid, ev.CPUPid).Bytes(FieldCPUComm, ev.CPUComm.Bytes())
	}
	e.Uint32(FieldNetns, ev.Netns)
	e.Send()
}

// TestJSONMatchesZerolog: every kind of report, odd commands and addresses,
// come out exactly as zerolog's Event writes them.
func TestJSONMatchesZerolog(t *testing.T) {
	wall := func(ns uint64) time.Time { return time.Unix(0, int64(ns)) }
	comms := []string{"", "tcpchurn", "evil\"\n\\\xff", "\x01\x1f\t\r\b\f", "ünï", "\xe2\x82", "sixteen-bytes-xx"}
	addrs := []netip.Addr{{}, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.10.0.9"),
		netip.MustParseAddr("::1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:10.1.2.3")}
	kinds := []tracker.ReportKind{tracker.ReportState, tracker.ReportCloseWaitLeak, tracker.ReportCloseWaitResolved,
		tracker.ReportStuck, tracker.ReportTimeWaitPressure, tracker.ReportConnection, tracker.ReportReset}
	n := 0
	for i := 0; i < 400; i++ {
		var ev events.Event
		copy(ev.Comm[:], comms[i%len(comms)])
		copy(ev.CPUComm[:], comms[(i/3)%len(comms)])
		ev.Cookie, ev.Pid, ev.CPUPid, ev.Netns = uint64(i)*0x9e3779b97f4a7c15, uint32(i*7919), uint32(i), uint32(i)<<20
		ev.Owner, ev.Family = events.OwnerSource(i%6), events.Family([]uint8{4, 6, 0}[i%3])
		ev.Saddr, ev.Daddr = addrs[i%len(addrs)], addrs[(i/2)%len(addrs)]
		ev.Sport, ev.Dport = uint16(i*131), uint16(65535-i)
		ev.Old, ev.New = events.State(i%13), events.State((i/13)%13)
		r := &tracker.Report{Kind: kinds[i%len(kinds)], Ev: &ev, Mono: uint64(i) * 1_234_567_891, FD: int32(i%5) - 1,
			Source: tracker.Source(i % 4), Dur: time.Duration(i) * 1234567, HasDur: i%2 == 0, State: events.State(i % 12),
			Age: time.Duration(i) * time.Second / 7, AgeLowerBound: i%3 == 0, Count: i * 37, PortRange: 28232}
		if i%4 == 1 {
			r.Reason = tracker.ReasonExpired
		}
		if r.Kind == tracker.ReportConnection {
			c := &tracker.Connection{Role: tracker.Role(i % 3), End: tracker.EndResetSent, TimeWait: i%2 == 0,
				TimeWaitUnknown: i%5 == 0, HasHandshake: i%3 == 0, Handshake: time.Duration(i) * 1001, N: i % 6,
				LifeLowerBound: i%4 == 0, Life: time.Duration(i) * time.Millisecond,
				HasTotals: i%7 != 0, BytesSent: uint64(i) << (i % 40), BytesReceived: uint64(i * 3),
				SRTT: time.Duration(i) * 37 * time.Microsecond, Retransmits: uint32(i % 9)}
			if i%2 == 1 {
				c.ClosedFirst = tracker.ClosedByPeer
			}
			for j := range c.N {
				c.Steps[j] = tracker.Step{State: events.State(1 + (i+j)%11), Dur: time.Duration(i*j) * 999}
			}
			r.Conn = c
		}
		if r.Kind == tracker.ReportReset {
			r.Reset = []string{tracker.ResetSent, tracker.ResetReceived}[i%2]
		}
		if r.Kind == tracker.ReportTimeWaitPressure && !ev.Daddr.IsValid() {
			continue // always has a peer
		}
		var got, want levelBuf
		NewJSON(&got, wall).Write(r)
		var tf timeFormatter
		ts := string(tf.appendTo(nil, wall(r.Mono)))
		zerologWrite(zerolog.New(&want), ts[1:len(ts)-1], r)
		if got.String() != want.String() {
			t.Fatalf("report %d differs:\n got %s\nwant %s", i, got.String(), want.String())
		}
		if got.levels[0] != want.levels[0] {
			t.Fatalf("report %d: level %v, zerolog %v", i, got.levels[0], want.levels[0])
		}
		n++
	}
	if n < 300 {
		t.Fatalf("only %d reports compared", n)
	}
}

// addrString is an address as the encoder writes it: "" when unknown, not
// netip's "invalid IP".
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
