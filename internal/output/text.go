package output

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/tcpstated/tcpstated/internal/tracker"
)

// Text writes one aligned line per report, for a person at a terminal.
type Text struct {
	w    io.Writer
	wall func(uint64) time.Time
	buf  []byte
	n    int
}

// TextHeader names the columns.
const TextHeader = "TIME            PID     COMM             LOCAL                  REMOTE                 TRANSITION                 DURATION\n"

// NewText writes to w.
func NewText(w io.Writer, wall func(uint64) time.Time) *Text {
	return &Text{w: w, wall: wall, buf: make([]byte, 0, 256)}
}

func pad(b []byte, width int, from int) []byte {
	for len(b)-from < width {
		b = append(b, ' ')
	}
	return append(b, ' ')
}

// Write renders one report.
func (t *Text) Write(r *tracker.Report) {
	if t.n%40 == 0 {
		io.WriteString(t.w, TextHeader)
	}
	t.n++
	ev := r.Ev
	b := t.buf[:0]
	b = t.wall(r.Mono).AppendFormat(b, "15:04:05.000000")
	b = append(b, ' ', ' ')
	start := len(b)
	if ev.Pid != 0 {
		b = strconv.AppendUint(b, uint64(ev.Pid), 10)
	} else {
		b = append(b, '-') // owner unknown, as in sockets and top
	}
	b = pad(b, 7, start)
	start = len(b)
	b = append(b, ev.Comm.Bytes()...)
	b = pad(b, 16, start)
	start = len(b)
	b = appendEndpoint(b, ev.Saddr, ev.Sport)
	b = pad(b, 22, start)
	start = len(b)
	b = appendEndpoint(b, ev.Daddr, ev.Dport)
	b = pad(b, 22, start)
	start = len(b)
	switch r.Kind {
	case tracker.ReportState:
		b = append(b, ev.Old.String()...)
		b = append(b, " -> "...)
		b = append(b, ev.New.String()...)
		b = pad(b, 26, start)
		if r.HasDur {
			b = append(b, fmtDur(r.Dur)...)
		} else {
			b = append(b, '-')
		}
		if r.Reason != "" {
			b = append(b, " ("...)
			b = append(b, r.Reason...)
			b = append(b, ')')
		}
	case tracker.ReportConnection:
		c := r.Conn
		b = fmt.Appendf(b, "CONNECTION %s %s", c.Role, c.End)
		if c.ClosedFirst != "" {
			b = fmt.Appendf(b, " (%s closed first)", c.ClosedFirst)
		}
		b = fmt.Appendf(b, " life %s", fmtDur(c.Life))
		if c.LifeLowerBound {
			b = append(b, " or more"...)
		}
		if c.HasHandshake {
			b = fmt.Appendf(b, " handshake %s", fmtDur(c.Handshake))
		}
		if c.HasTotals {
			b = fmt.Appendf(b, " sent %d B received %d B srtt %s retransmits %d",
				c.BytesSent, c.BytesReceived, fmtDur(c.SRTT), c.Retransmits)
		}
		if c.TimeWait {
			b = append(b, " then TIME_WAIT"...)
		}
	case tracker.ReportReset:
		b = fmt.Appendf(b, "RST %s in %s", r.Reset, r.State)
	case tracker.ReportTimeWaitPressure:
		b = fmt.Appendf(b, "TIME_WAIT PRESSURE: %d of %d ephemeral ports", r.Count, r.PortRange)
	default:
		b = append(b, r.Kind.String()...)
		b = fmt.Appendf(b, " %s for %s", r.State, fmtDur(r.Age))
		if r.AgeLowerBound {
			b = append(b, " or more"...)
		}
		if r.FD >= 0 {
			b = fmt.Appendf(b, " fd=%d", r.FD)
		}
	}
	b = append(b, '\n')
	t.buf = b
	t.w.Write(b)
}

// appendEndpoint writes addr:port, [addr]:port for IPv6 (IPv4-mapped
// included), or - when the address is not known.
func appendEndpoint(b []byte, a netip.Addr, port uint16) []byte {
	if !a.IsValid() {
		return append(b, '-')
	}
	return netip.AddrPortFrom(a, port).AppendTo(b)
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
}
