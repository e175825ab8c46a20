package sink

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// AcceptedForms lists the sink URLs Open understands; errors quote it.
const AcceptedForms = "stdout, stderr, file:/abs/path, file:///abs/path, tcp://host:port, " +
	"tls://host:port[?TLS options], unix:///abs/path, syslog://host[:port] (UDP), syslog+udp://host[:port], " +
	"syslog+tcp://host[:port], syslog+tls://host[:port][?TLS options], syslog:///abs/socket (e.g. syslog:///dev/log); " +
	"TLS options, all optional (cert and key together): ca=/abs/ca.pem&cert=/abs/cert.pem&key=/abs/key.pem&server_name=name"

const (
	maxURLLen         = 4096
	maxUnixPathLen    = 107 // sun_path is 108 bytes including the NUL
	maxHostnameLen    = 253
	defaultSyslogPort = "514"
)

type kind int

const (
	kindStdout kind = iota
	kindStderr
	kindFile
	kindTCP
	kindUnix
	kindSyslogUDP
	kindSyslogTCP
	kindSyslogUnix
	kindTLS
	kindSyslogTLS
)

// target is a validated sink URL: what to open and where.
type target struct {
	kind kind
	// network is the net.Dial network ("tcp", "unix", "udp", "unixgram");
	// empty for stdout, stderr and files.
	network string
	// addr is host:port for IP networks, a cleaned absolute path otherwise.
	addr string
	// tls holds the options of kindTLS and kindSyslogTLS.
	tls tlsParams
}

func (t target) usesTLS() bool { return t.kind == kindTLS || t.kind == kindSyslogTLS }

// parseTarget validates a sink URL. It trusts nothing in raw: the URL may
// come from a config file or command line written by anyone.
func parseTarget(raw string) (target, error) {
	bad := func(format string, a ...any) (target, error) {
		return target{}, fmt.Errorf("sink %s: %s; accepted forms: %s",
			quoteForError(raw), fmt.Sprintf(format, a...), AcceptedForms)
	}
	switch {
	case raw == "":
		return bad("empty URL")
	case len(raw) > maxURLLen:
		return bad("URL longer than %d bytes", maxURLLen)
	case hasControl(raw):
		return bad("URL contains control characters")
	case strings.TrimSpace(raw) != raw:
		return bad("URL has leading or trailing whitespace")
	}
	switch raw {
	case "stdout":
		return target{kind: kindStdout}, nil
	case "stderr":
		return target{kind: kindStderr}, nil
	}

	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the input, which may hold secrets
		}
		return bad("not a URL: %v", err)
	}
	switch {
	case u.Scheme == "":
		return bad("no scheme")
	case u.User != nil:
		return bad("credentials are not accepted in sink URLs")
	case (u.RawQuery != "" || u.ForceQuery) && !takesQuery(u.Scheme):
		return bad("query strings are not accepted (only tls:// and syslog+tls:// take options)")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("fragments are not accepted")
	case u.Opaque != "":
		return bad("%s: needs an absolute path or //host, e.g. %s:///abs/path or %s://host:port",
			u.Scheme, u.Scheme, u.Scheme)
	}

	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad("file URLs name a local path; host %q is not accepted", u.Host)
		}
		p, err := checkPath(u.Path, 0)
		if err != nil {
			return bad("file: %v", err)
		}
		return target{kind: kindFile, addr: p}, nil
	case "unix":
		if u.Host != "" {
			return bad("unix: use unix:///abs/path (three slashes); got host %q", u.Host)
		}
		p, err := checkPath(u.Path, maxUnixPathLen)
		if err != nil {
			return bad("unix: %v", err)
		}
		return target{kind: kindUnix, network: "unix", addr: p}, nil
	case "tcp":
		addr, err := checkHostPort(u, "")
		if err != nil {
			return bad("tcp: %v", err)
		}
		return target{kind: kindTCP, network: "tcp", addr: addr}, nil
	case "tls":
		addr, err := checkHostPort(u, "")
		if err != nil {
			return bad("tls: %v", err)
		}
		p, err := parseTLSParams(u)
		if err != nil {
			return bad("tls: %v", err)
		}
		return target{kind: kindTLS, network: "tcp", addr: addr, tls: p}, nil
	case "syslog", "syslog+udp", "syslog+tcp", "syslog+tls":
		if u.Host == "" && u.Scheme == "syslog" {
			p, err := checkPath(u.Path, maxUnixPathLen)
			if err != nil {
				return bad("syslog: %v", err)
			}
			return target{kind: kindSyslogUnix, network: "unixgram", addr: p}, nil
		}
		port := defaultSyslogPort
		if u.Scheme == "syslog+tls" {
			port = defaultSyslogTLSPort
		}
		addr, err := checkHostPort(u, port)
		if err != nil && u.Host == "" && u.Path != "" {
			return bad("%s: missing host; a local socket is named syslog:///path", u.Scheme)
		}
		if err != nil {
			return bad("%s: %v", u.Scheme, err)
		}
		switch u.Scheme {
		case "syslog+tcp":
			return target{kind: kindSyslogTCP, network: "tcp", addr: addr}, nil
		case "syslog+tls":
			p, err := parseTLSParams(u)
			if err != nil {
				return bad("syslog+tls: %v", err)
			}
			return target{kind: kindSyslogTLS, network: "tcp", addr: addr, tls: p}, nil
		}
		return target{kind: kindSyslogUDP, network: "udp", addr: addr}, nil
	}
	return bad("unknown scheme %q", u.Scheme)
}

// checkPath returns the cleaned absolute path, refusing anything that
// cannot name a file or socket.
func checkPath(p string, maxLen int) (string, error) {
	switch {
	case p == "":
		return "", errors.New("missing path")
	case !filepath.IsAbs(p):
		return "", fmt.Errorf("path %q is not absolute", p)
	case hasControl(p): // %00 and friends decode to control bytes
		return "", errors.New("path contains control characters")
	case strings.HasSuffix(p, "/"):
		return "", fmt.Errorf("path %q names a directory", p)
	}
	clean := filepath.Clean(p)
	if clean == "/" {
		return "", errors.New("path is the root directory")
	}
	if maxLen > 0 && len(clean) > maxLen {
		return "", fmt.Errorf("socket path longer than %d bytes", maxLen)
	}
	return clean, nil
}

// checkHostPort returns "host:port" from a //host:port URL with no path.
func checkHostPort(u *url.URL, defaultPort string) (string, error) {
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", errors.New("missing host")
	}
	if u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("unexpected path %q after host:port", u.Path)
	}
	if err := checkHost(host); err != nil {
		return "", err
	}
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return "", errors.New("empty port")
		}
		if defaultPort == "" {
			return "", errors.New("missing port")
		}
		port = defaultPort
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not in 1-65535", port)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// checkHost accepts IP literals and DNS names (letters, digits, '-', '_', '.').
func checkHost(h string) error {
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if len(h) > maxHostnameLen {
		return fmt.Errorf("host name longer than %d bytes", maxHostnameLen)
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q has an empty or over-long label", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return fmt.Errorf("host %q contains %q", h, c)
			}
		}
	}
	return nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// quoteForError quotes a rejected URL for an error message, masking a
// user:password part and cutting it short so a hostile value cannot flood
// the log.
func quoteForError(raw string) string {
	s := raw
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
			s = s[:i+3] + "REDACTED" + rest[at:]
		}
	}
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.QuoteToASCII(s)
}
