package sink

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// Open validates rawURL (see AcceptedForms) and starts a sink for it.
// A file that cannot be opened is an error, and so is a TLS sink's CA,
// cert or key file that cannot be read or used; an unreachable network
// peer is not, nor one whose TLS handshake fails: the sink keeps retrying
// in the background and logs the trouble.
func Open(rawURL string, o Options) (Sink, error) {
	t, err := parseTarget(rawURL)
	if err != nil {
		return nil, err
	}
	var tlsConf *tls.Config
	if t.usesTLS() {
		host, _, _ := net.SplitHostPort(t.addr)
		if tlsConf, err = t.tls.clientConfig(host); err != nil {
			return nil, fmt.Errorf("sink %s: %w", quoteForError(rawURL), err)
		}
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
		fd := &fileDest{path: t.addr, mode: o.FileMode, cache: pageCacheWindow{keep: o.FileCache}}
		if err := fd.open(time.Time{}); err != nil {
			return nil, fmt.Errorf("sink %s: %w", rawURL, err)
		}
		s.dst, openAlready = fd, true
	case kindTCP, kindUnix, kindTLS:
		s.dst = s.netDest(t, tlsConf)
	case kindSyslogUDP, kindSyslogTCP, kindSyslogTLS, kindSyslogUnix:
		s.dst = s.netDest(t, tlsConf)
		s.frame = newSyslogFramerFor(t.kind, &s.truncated)
		s.stamp = true
	default:
		return nil, fmt.Errorf("sink %s: unhandled kind %d", rawURL, t.kind)
	}
	s.start(openAlready)
	return s, nil
}

// netDest is the destination of a network sink; tlsConf is nil for clear text.
func (s *queueSink) netDest(t target, tlsConf *tls.Config) *netDest {
	return &netDest{network: t.network, addr: t.addr, dialTO: s.opts.DialTimeout, wake: s.wake, tls: tlsConf}
}

func newSyslogFramerFor(k kind, truncated *atomic.Uint64) *syslogFramer {
	host, _ := os.Hostname()
	pid := os.Getpid()
	switch k {
	case kindSyslogTCP, kindSyslogTLS: // RFC 5425 frames as RFC 6587 octet counting does
		return newSyslogFramer(styleRFC5424, true, 0, host, pid, truncated)
	case kindSyslogUnix:
		return newSyslogFramer(styleLocal, false, maxSyslogDatagram, host, pid, truncated)
	default:
		return newSyslogFramer(styleRFC5424, false, maxSyslogDatagram, host, pid, truncated)
	}
}
