package sink

import (
	"strings"
	"testing"
)

func TestParseTargetAccepts(t *testing.T) {
	cases := []struct {
		raw     string
		kind    kind
		network string
		addr    string
	}{
		{"stdout", kindStdout, "", ""},
		{"stderr", kindStderr, "", ""},
		{"file:/var/log/tcpstated.json", kindFile, "", "/var/log/tcpstated.json"},
		{"file:///var/log/tcpstated.json", kindFile, "", "/var/log/tcpstated.json"},
		{"file://localhost/var/log/x.json", kindFile, "", "/var/log/x.json"},
		{"file:/var/log/../log/x.json", kindFile, "", "/var/log/x.json"},
		{"file:/var/log/with%20space.json", kindFile, "", "/var/log/with space.json"},
		{"FILE:/x/y", kindFile, "", "/x/y"},
		{"tcp://127.0.0.1:5170", kindTCP, "tcp", "127.0.0.1:5170"},
		{"tcp://collector.example.com:5170", kindTCP, "tcp", "collector.example.com:5170"},
		{"tcp://collector.example.com:5170/", kindTCP, "tcp", "collector.example.com:5170"},
		{"tcp://[::1]:5170", kindTCP, "tcp", "[::1]:5170"},
		{"tcp://log_host:0005170", kindTCP, "tcp", "log_host:5170"},
		{"unix:///run/vector.sock", kindUnix, "unix", "/run/vector.sock"},
		{"syslog://logs.example.com:514", kindSyslogUDP, "udp", "logs.example.com:514"},
		{"syslog://logs.example.com", kindSyslogUDP, "udp", "logs.example.com:514"},
		{"syslog+udp://10.0.0.1:1514", kindSyslogUDP, "udp", "10.0.0.1:1514"},
		{"syslog+tcp://10.0.0.1:601", kindSyslogTCP, "tcp", "10.0.0.1:601"},
		{"syslog+tcp://[2001:db8::1]", kindSyslogTCP, "tcp", "[2001:db8::1]:514"},
		{"syslog:///dev/log", kindSyslogUnix, "unixgram", "/dev/log"},
	}
	for _, c := range cases {
		got, err := parseTarget(c.raw)
		if err != nil {
			t.Errorf("parseTarget(%q): %v", c.raw, err)
			continue
		}
		want := target{kind: c.kind, network: c.network, addr: c.addr}
		if got != want {
			t.Errorf("parseTarget(%q) = %+v, want %+v", c.raw, got, want)
		}
	}
}

func TestParseTargetRejects(t *testing.T) {
	cases := []struct {
		raw, why string // why: a part of the error that says what is wrong
	}{
		{"", "empty URL"},
		{" stdout", "whitespace"},
		{"stdout\n", "control characters"},
		{"STDOUT", "no scheme"},
		{"/var/log/x.json", "no scheme"},
		{"x.json", "no scheme"},
		{"http://example.com/", "unknown scheme"},
		{"udp://127.0.0.1:514", "unknown scheme"},
		{"file:relative/x.json", "absolute path"},
		{"file:", "missing path"},
		{"file:///", "directory"},
		{"file:/.", "root directory"},
		{"file:/var/log/", "directory"},
		{"file://otherhost/var/log/x", "host"},
		{"file:/var/log/x%00.json", "control characters"},
		{"file:/var/log/x%0a.json", "control characters"},
		{"file:/var/log/x.json?mode=0777", "query"},
		{"file:/var/log/x.json#frag", "fragment"},
		{"file:/var/log/x.json#", "fragment"},
		{"tcp://127.0.0.1", "missing port"},
		{"tcp://127.0.0.1:", "empty port"},
		{"tcp://:5170", "missing host"},
		{"tcp://127.0.0.1:0", "not in 1-65535"},
		{"tcp://127.0.0.1:65536", "not in 1-65535"},
		{"tcp://127.0.0.1:99999999999999999999", "not in 1-65535"},
		{"tcp://127.0.0.1:http", "invalid port"},
		{"tcp://127.0.0.1:5170/path", "unexpected path"},
		{"tcp://user:hunter2@127.0.0.1:5170", "credentials"},
		{"tcp://bad host:5170", "not a URL"},
		{"tcp://a..b:5170", "label"},
		{"tcp://" + strings.Repeat("a", 64) + ".com:1", "label"},
		{"tcp://ex$ample.com:1", "contains"},
		{"tcp:127.0.0.1:5170", "needs an absolute path or //host"},
		{"unix://run/x.sock", "three slashes"},
		{"unix:///" + strings.Repeat("s", 120), "longer than"},
		{"unix:relative.sock", "needs an absolute path"},
		{"syslog+udp:///dev/log", "missing host"},
		{"syslog+tcp:///dev/log", "missing host"},
		{"syslog://host:514/extra", "unexpected path"},
		{"syslog://[::1", "not a URL"},
		{"file:/" + strings.Repeat("x", maxURLLen), "longer than"},
		{"tcp://\u00e9xample.com:1", "contains"},
	}
	for _, c := range cases {
		_, err := parseTarget(c.raw)
		if err == nil {
			t.Errorf("parseTarget(%q): accepted, want an error about %q", c.raw, c.why)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.why) {
			t.Errorf("parseTarget(%q) = %q, want it to mention %q", c.raw, msg, c.why)
		}
		if !strings.Contains(msg, AcceptedForms) {
			t.Errorf("parseTarget(%q) error does not list the accepted forms: %q", c.raw, msg)
		}
		if strings.Contains(msg, "hunter2") {
			t.Errorf("parseTarget(%q) error leaks the password: %q", c.raw, msg)
		}
		if strings.ContainsAny(msg, "\n\x00") {
			t.Errorf("parseTarget(%q) error carries control characters: %q", c.raw, msg)
		}
	}
}

func TestOpenRejectsBadURL(t *testing.T) {
	s, err := Open("gopher://example.com:70", Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted an unknown scheme")
	}
	if !strings.Contains(err.Error(), "unknown scheme") {
		t.Fatalf("Open error = %v", err)
	}
}

func TestQuoteForErrorRedactsAndBounds(t *testing.T) {
	got := quoteForError("tcp://admin:s3cret@host:1/x")
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "REDACTED@host:1") {
		t.Errorf("quoteForError = %s", got)
	}
	long := quoteForError(strings.Repeat("z", 5000))
	if len(long) > 220 {
		t.Errorf("quoteForError kept %d bytes of a 5000-byte URL", len(long))
	}
}
