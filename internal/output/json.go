// Package output renders reports: one JSON object per line for pipelines,
// or an aligned line for people.
package output

import (
	"math"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// Field names of the event stream. They are a contract with pipelines:
// docs/events.md documents each; never rename one.
const (
	FieldEvent     = "event"
	FieldTime      = "time"
	FieldCookie    = "cookie"
	FieldPid       = "pid"
	FieldComm      = "comm"
	FieldOwner     = "owner"
	FieldFD        = "fd"
	FieldFamily    = "family"
	FieldSaddr     = "saddr"
	FieldSport     = "sport"
	FieldDaddr     = "daddr"
	FieldDport     = "dport"
	FieldOld       = "old"
	FieldNew       = "new"
	FieldDurMs     = "dur_ms"
	FieldSource    = "source"
	FieldReason    = "reason"
	FieldCPUPid    = "cpu_pid"
	FieldCPUComm   = "cpu_comm"
	FieldNetns     = "netns"
	FieldState     = "state"
	FieldAgeS      = "age_s"
	FieldAgeLB     = "age_is_lower_bound"
	FieldCount     = "count"
	FieldPortRange = "port_range"
	FieldShare     = "share"
	// connection
	FieldRole        = "role"
	FieldEnd         = "end"
	FieldClosedFirst = "closed_first"
	FieldTimeWait    = "time_wait"
	FieldLifeMs      = "life_ms"
	FieldLifeLB      = "life_is_lower_bound"
	FieldHandshakeMs = "handshake_ms"
	FieldStatesMs    = "states_ms"
	FieldBytesSent   = "bytes_sent"
	FieldBytesRecv   = "bytes_received"
	FieldSRTTMs      = "srtt_ms"
	FieldRetransmits = "retransmits"
	// reset
	FieldDirection = "direction"
)

// Severity by event kind: findings are warnings, transitions are info.
func level(k tracker.ReportKind) zerolog.Level {
	switch k {
	case tracker.ReportCloseWaitLeak, tracker.ReportStuck, tracker.ReportTimeWaitPressure:
		return zerolog.WarnLevel
	}
	return zerolog.InfoLevel
}

// JSON writes reports as JSON lines to a zerolog.LevelWriter, byte for
// byte what zerolog's Event writes for the same fields (json_test.go
// compares), with each key encoded once where zerolog escapes it on every
// event (docs/performance.md). It allocates nothing per event.
type JSON struct {
	w    zerolog.LevelWriter
	wall func(uint64) time.Time
	buf  []byte
	ts   timeFormatter
}

// quoted holds JSON string literals of names known to need no escaping.
type quoted [256][]byte

func quote(n int, name func(int) string) *quoted {
	var q quoted
	for i := 0; i < n && i < len(q); i++ {
		q[i] = []byte(`"` + name(i) + `"`)
	}
	return &q
}

var (
	stateJSON  = quote(256, func(i int) string { return events.State(i).String() })
	kindJSON   = quote(8, func(i int) string { return tracker.ReportKind(i).String() })
	ownerJSON  = quote(8, func(i int) string { return events.OwnerSource(i).String() })
	sourceJSON = quote(8, func(i int) string { return tracker.Source(i).String() })
	familyJSON = quote(8, func(i int) string { return events.Family(i).String() })
	levelJSON  = quote(8, func(i int) string { return zerolog.Level(i).String() })
)

// kv holds `,"name":"value"` for every value of an enumeration, so that
// a field is one copy.
func kv(name string, q *quoted) *quoted {
	var t quoted
	for i, v := range q {
		if v != nil {
			t[i] = append(mkKey(name), v...)
		}
	}
	return &t
}

var (
	ownerKV  = kv(FieldOwner, ownerJSON)
	familyKV = kv(FieldFamily, familyJSON)
	oldKV    = kv(FieldOld, stateJSON)
	newKV    = kv(FieldNew, stateJSON)
	sourceKV = kv(FieldSource, sourceJSON)
	stateKV  = kv(FieldState, stateJSON)
)

// head is `{"level":"info","event":"state","time":` by level and kind.
var head = func() (h [8][8][]byte) {
	for l := range h {
		for k := range h[l] {
			if levelJSON[l] != nil && kindJSON[k] != nil {
				h[l][k] = []byte(`{"` + zerolog.LevelFieldName + `":` + string(levelJSON[l]) +
					`,"` + FieldEvent + `":` + string(kindJSON[k]) + `,"` + FieldTime + `":`)
			}
		}
	}
	return h
}()

// key is `,"name":`, encoded once.
type key []byte

func mkKey(name string) key { return key(`,"` + name + `":`) }

var (
	keyCookie      = mkKey(FieldCookie)
	keyPid         = mkKey(FieldPid)
	keyComm        = mkKey(FieldComm)
	keyFD          = mkKey(FieldFD)
	keySaddr       = mkKey(FieldSaddr)
	keySport       = mkKey(FieldSport)
	keyDaddr       = mkKey(FieldDaddr)
	keyDport       = mkKey(FieldDport)
	keyDurMs       = mkKey(FieldDurMs)
	keyReason      = mkKey(FieldReason)
	keyCPUPid      = mkKey(FieldCPUPid)
	keyCPUComm     = mkKey(FieldCPUComm)
	keyNetns       = mkKey(FieldNetns)
	keyAgeS        = mkKey(FieldAgeS)
	keyAgeLB       = mkKey(FieldAgeLB)
	keyCount       = mkKey(FieldCount)
	keyPortRange   = mkKey(FieldPortRange)
	keyShare       = mkKey(FieldShare)
	keyRole        = mkKey(FieldRole)
	keyEnd         = mkKey(FieldEnd)
	keyClosedFirst = mkKey(FieldClosedFirst)
	keyTimeWait    = mkKey(FieldTimeWait)
	keyLifeMs      = mkKey(FieldLifeMs)
	keyLifeLB      = mkKey(FieldLifeLB)
	keyHandshakeMs = mkKey(FieldHandshakeMs)
	keyStatesMs    = mkKey(FieldStatesMs)
	keyBytesSent   = mkKey(FieldBytesSent)
	keyBytesRecv   = mkKey(FieldBytesRecv)
	keySRTTMs      = mkKey(FieldSRTTMs)
	keyRetransmits = mkKey(FieldRetransmits)
	keyDirection   = mkKey(FieldDirection)
)

// NewJSON writes to w (usually a sink fan-out). wall converts kernel
// timestamps.
func NewJSON(w zerolog.LevelWriter, wall func(uint64) time.Time) *JSON {
	return &JSON{w: w, wall: wall, buf: make([]byte, 0, 1024)}
}

func appendUint(b []byte, k key, v uint64) []byte {
	return appendDec(append(b, k...), v)
}

// appendIP writes an address; IPv4, nearly every address, byte by byte.
func appendIP(b []byte, a netip.Addr) []byte {
	if !a.Is4() {
		return a.AppendTo(b)
	}
	for i, x := range a.As4() {
		if i > 0 {
			b = append(b, '.')
		}
		switch {
		case x >= 100:
			b = append(b, '0'+x/100, '0'+x/10%10, '0'+x%10)
		case x >= 10:
			b = append(b, '0'+x/10, '0'+x%10)
		default:
			b = append(b, '0'+x)
		}
	}
	return b
}

func appendAddr(b []byte, k key, a netip.Addr) []byte {
	b = append(append(b, k...), '"')
	return append(appendIP(b, a), '"')
}

// appendFloat renders a float64 as zerolog does: as ES6 numbers are
// printed, NaN and infinities as strings.
func appendFloat(b []byte, k key, f float64) []byte {
	b = append(b, k...)
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Inf"`...)
	}
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		b = strconv.AppendFloat(b, f, 'e', -1, 64)
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1] // e-09 -> e-9
			b = b[:n-1]
		}
		return b
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// appendString appends s as a JSON string as zerolog does: control
// characters, quotes and backslashes escaped, invalid UTF-8 as U+FFFD.
func appendString(b []byte, k key, s []byte) []byte {
	b = append(append(b, k...), '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			start = i
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Write renders one report.
func (j *JSON) Write(r *tracker.Report) {
	ev := r.Ev
	lvl := level(r.Kind)
	b := append(j.buf[:0], head[lvl&7][r.Kind&7]...)
	b = j.ts.appendTo(b, j.wall(r.Mono))
	if r.Kind == tracker.ReportTimeWaitPressure {
		// About a process, a local address and a peer, not one socket.
		b = appendUint(b, keyPid, uint64(ev.Pid))
		b = appendString(b, keyComm, ev.Comm.Bytes())
		b = append(b, familyKV[ev.Family]...)
		b = appendAddr(b, keySaddr, ev.Saddr)
		b = appendAddr(b, keyDaddr, ev.Daddr)
		b = appendUint(b, keyDport, uint64(ev.Dport))
		b = strconv.AppendInt(append(b, keyCount...), int64(r.Count), 10)
		b = strconv.AppendInt(append(b, keyPortRange...), int64(r.PortRange), 10)
		b = appendFloat(b, keyShare, float64(r.Count)/float64(r.PortRange))
		j.send(lvl, b)
		return
	}
	b = appendUint(b, keyCookie, ev.Cookie)
	b = appendUint(b, keyPid, uint64(ev.Pid))
	b = appendString(b, keyComm, ev.Comm.Bytes())
	b = append(b, ownerKV[ev.Owner]...)
	if r.FD >= 0 {
		b = strconv.AppendInt(append(b, keyFD...), int64(r.FD), 10)
	}
	b = append(b, familyKV[ev.Family]...)
	if ev.Saddr.IsValid() {
		b = appendAddr(b, keySaddr, ev.Saddr)
	}
	b = appendUint(b, keySport, uint64(ev.Sport))
	if ev.Daddr.IsValid() {
		b = appendAddr(b, keyDaddr, ev.Daddr)
	}
	b = appendUint(b, keyDport, uint64(ev.Dport))
	switch r.Kind {
	case tracker.ReportState:
		b = append(append(b, oldKV[ev.Old]...), newKV[ev.New]...)
		if r.HasDur {
			b = appendMillis(append(b, keyDurMs...), r.Dur)
		}
		b = append(b, sourceKV[r.Source]...)
		if r.Reason != "" {
			b = appendString(b, keyReason, []byte(r.Reason))
		}
		b = appendUint(b, keyCPUPid, uint64(ev.CPUPid))
		b = appendString(b, keyCPUComm, ev.CPUComm.Bytes())
	case tracker.ReportCloseWaitLeak, tracker.ReportCloseWaitResolved, tracker.ReportStuck:
		b = append(b, stateKV[r.State]...)
		b = appendFloat(b, keyAgeS, r.Age.Seconds())
		b = strconv.AppendBool(append(b, keyAgeLB...), r.AgeLowerBound)
	case tracker.ReportConnection:
		b = appendConnection(b, r.Conn)
	case tracker.ReportReset:
		b = appendString(b, keyDirection, []byte(r.Reset))
		b = append(b, stateKV[r.State]...)
		b = appendUint(b, keyCPUPid, uint64(ev.CPUPid))
		b = appendString(b, keyCPUComm, ev.CPUComm.Bytes())
	}
	b = appendUint(b, keyNetns, uint64(ev.Netns))
	j.send(lvl, b)
}

func (j *JSON) send(lvl zerolog.Level, b []byte) {
	b = append(b, '}', '\n')
	j.w.WriteLevel(lvl, b)
	j.buf = b
}

// appendConnection writes a connection summary's fields; states_ms is an
// object of the states it passed through, in order.
func appendConnection(b []byte, c *tracker.Connection) []byte {
	b = appendString(b, keyRole, []byte(c.Role.String()))
	b = appendString(b, keyEnd, []byte(c.End))
	if c.ClosedFirst != "" {
		b = appendString(b, keyClosedFirst, []byte(c.ClosedFirst))
	}
	if !c.TimeWaitUnknown {
		b = strconv.AppendBool(append(b, keyTimeWait...), c.TimeWait)
	}
	if c.HasHandshake {
		b = appendMillis(append(b, keyHandshakeMs...), c.Handshake)
	}
	b = appendMillis(append(b, keyLifeMs...), c.Life)
	b = strconv.AppendBool(append(b, keyLifeLB...), c.LifeLowerBound)
	if c.HasTotals {
		b = appendUint(b, keyBytesSent, c.BytesSent)
		b = appendUint(b, keyBytesRecv, c.BytesReceived)
		b = appendMillis(append(b, keySRTTMs...), c.SRTT)
		b = appendUint(b, keyRetransmits, uint64(c.Retransmits))
	}
	b = append(b, keyStatesMs...)
	b = append(b, '{')
	for i := 0; i < c.N; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, stateJSON[c.Steps[i].State]...)
		b = appendMillis(append(b, ':'), c.Steps[i].Dur)
	}
	return append(b, '}')
}
