package sink

import (
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

const (
	facilityDaemon = 3
	syslogAppName  = "tcpstated"
	// maxSyslogDatagram bounds one syslog datagram, header included. It is
	// rsyslog's default maxMessageSize; a longer event is cut, not dropped,
	// and counted in Stats.Truncated.
	maxSyslogDatagram = 8192
	maxSyslogHostname = 255
	rfc5424Time       = "2006-01-02T15:04:05.000000Z07:00"
)

type syslogStyle int

const (
	// styleRFC5424 is for network syslog:
	//   <PRI>1 TIMESTAMP HOSTNAME tcpstated PID - - MSG
	styleRFC5424 syslogStyle = iota
	// styleLocal is what syslog(3) writes to /dev/log:
	//   <PRI>Mmm dd hh:mm:ss tcpstated[PID]: MSG
	// journald and rsyslog's imuxsock parse this header; both take the
	// "1 TIMESTAMP HOSTNAME ..." of RFC 5424 for part of the message text.
	styleLocal
)

// syslogFramer wraps each event in a syslog header with facility daemon
// and the severity of the event's zerolog level.
type syslogFramer struct {
	style         syslogStyle
	octetCounting bool // RFC 6587 "LEN SP MSG" framing, for TCP
	maxLen        int  // 0: no limit (streams)
	tail          []byte
	scratch       []byte
	truncated     *atomic.Uint64
}

func newSyslogFramer(style syslogStyle, octetCounting bool, maxLen int, hostname string, pid int, truncated *atomic.Uint64) *syslogFramer {
	var tail []byte
	switch style {
	case styleRFC5424:
		tail = append(tail, ' ')
		tail = append(tail, sanitizeHostname(hostname)...)
		tail = append(tail, ' ')
		tail = append(tail, syslogAppName...)
		tail = append(tail, ' ')
		tail = strconv.AppendInt(tail, int64(pid), 10)
		tail = append(tail, " - - "...) // no MSGID, no STRUCTURED-DATA
	case styleLocal:
		tail = append(tail, ' ')
		tail = append(tail, syslogAppName...)
		tail = append(tail, '[')
		tail = strconv.AppendInt(tail, int64(pid), 10)
		tail = append(tail, "]: "...)
	}
	return &syslogFramer{
		style:         style,
		octetCounting: octetCounting,
		maxLen:        maxLen,
		tail:          tail,
		scratch:       make([]byte, 0, 1024),
		truncated:     truncated,
	}
}

func (f *syslogFramer) appendFrame(dst []byte, e *event) []byte {
	msg := dst
	if f.octetCounting {
		msg = f.scratch[:0] // the length prefix needs the finished message
	}
	start := len(msg)
	msg = append(msg, '<')
	msg = strconv.AppendInt(msg, int64(facilityDaemon*8+severity(e.level)), 10)
	msg = append(msg, '>')
	at := time.Now()
	if e.at != 0 {
		at = time.Unix(0, e.at)
	}
	if f.style == styleRFC5424 {
		msg = append(msg, "1 "...)
		msg = at.UTC().AppendFormat(msg, rfc5424Time)
	} else {
		msg = at.Local().AppendFormat(msg, time.Stamp)
	}
	msg = append(msg, f.tail...)

	body := trimLineEnd(e.data)
	if f.maxLen > 0 {
		if room := f.maxLen - (len(msg) - start); len(body) > room {
			body = cutUTF8(body, room)
			f.truncated.Add(1)
		}
	}
	msg = append(msg, body...)
	if !f.octetCounting {
		return msg
	}
	f.scratch = msg[:0]
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}

// severity maps a zerolog level to a syslog severity. Fatal and panic stop
// at crit: emerg makes many syslog setups write to every terminal.
func severity(l zerolog.Level) int {
	switch l {
	case zerolog.TraceLevel, zerolog.DebugLevel:
		return 7 // debug
	case zerolog.WarnLevel:
		return 4 // warning
	case zerolog.ErrorLevel:
		return 3 // err
	case zerolog.FatalLevel, zerolog.PanicLevel:
		return 2 // crit
	default: // info, and events logged without a level
		return 6 // info
	}
}

// sanitizeHostname makes h a valid RFC 5424 HOSTNAME: 1-255 printable
// US-ASCII characters, or "-" when nothing is left.
func sanitizeHostname(h string) string {
	b := make([]byte, 0, len(h))
	for i := 0; i < len(h) && len(b) < maxSyslogHostname; i++ {
		if c := h[i]; c >= 33 && c <= 126 {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

func trimLineEnd(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// cutUTF8 shortens b to at most n bytes without splitting a UTF-8 sequence.
func cutUTF8(b []byte, n int) []byte {
	if n >= len(b) {
		return b
	}
	if n <= 0 {
		return b[:0]
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(b[i]) {
		i--
	}
	return b[:i]
}
