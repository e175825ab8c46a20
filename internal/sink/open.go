package sink

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Open validates rawURL (see AcceptedForms) and starts a sink for it.
// A file that cannot be opened is an error; an unreachable network peer is
// not: the sink keeps retrying in the background and logs the trouble.
func Open(rawURL string, o Options) (Sink, error) {
	t, err := parseTarget(rawURL)
	if err != nil {
		return nil, err
	}
	o = o.withDefaults()
	s := newQueueSink(rawURL, o)
	s.frame = lineFramer{}
	openAlready := false

	switch t.kind {
	case kindStdout:
		s.dst, openAlready = &stdioDest{f: os.Stdout}, true
	case kindStderr:
		s.dst, openAlready = &stdioDest{f: os.Stderr}, true
	case kindFile:
		fd := &fileDest{path: t.addr, mode: o.FileMode}
		if err := fd.open(time.Time{}); err != nil {
			return nil, fmt.Errorf("sink %s: %w", rawURL, err)
		}
		s.dst, openAlready = fd, true
	case kindTCP, kindUnix:
		s.dst = s.netDest(t)
	case kindSyslogUDP, kindSyslogTCP, kindSyslogUnix:
		s.dst = s.netDest(t)
		s.frame = newSyslogFramerFor(t.kind, &s.truncated)
		s.stamp = true
	default:
		return nil, fmt.Errorf("sink %s: unhandled kind %d", rawURL, t.kind)
	}
	s.start(openAlready)
	return s, nil
}

func (s *queueSink) netDest(t target) *netDest {
	return &netDest{network: t.network, addr: t.addr, dialTO: s.opts.DialTimeout, wake: s.wake}
}

func newSyslogFramerFor(k kind, truncated *atomic.Uint64) *syslogFramer {
	host, _ := os.Hostname()
	pid := os.Getpid()
	switch k {
	case kindSyslogTCP:
		return newSyslogFramer(styleRFC5424, true, 0, host, pid, truncated)
	case kindSyslogUnix:
		return newSyslogFramer(styleLocal, false, maxSyslogDatagram, host, pid, truncated)
	default:
		return newSyslogFramer(styleRFC5424, false, maxSyslogDatagram, host, pid, truncated)
	}
}
