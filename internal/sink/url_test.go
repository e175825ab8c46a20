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

func TestParseTargetAcceptsTLS(t *testing.T) {
	cases := []struct {
		raw  string
		kind kind
		addr string
		tls  tlsParams
	}{
		{"tls://127.0.0.1:6514", kindTLS, "127.0.0.1:6514", tlsParams{}},
		{"tls://logs.example.com:6514?ca=/etc/tcpstated/ca.pem", kindTLS, "logs.example.com:6514",
			tlsParams{ca: "/etc/tcpstated/ca.pem"}},
		{"tls://10.0.0.1:6514/?cert=/etc/c.pem&server_name=Logs.Example.com&key=/etc/x/../k.pem&ca=/etc/ca.pem",
			kindTLS, "10.0.0.1:6514",
			tlsParams{ca: "/etc/ca.pem", cert: "/etc/c.pem", key: "/etc/k.pem", serverName: "Logs.Example.com"}},
		// Values decode as paths: '+' stays a plus.
		{"tls://h:1?ca=/etc/my+ca%20x%3Bv1.pem", kindTLS, "h:1", tlsParams{ca: "/etc/my+ca x;v1.pem"}},
		{"tls://h:1?server_name=10.0.0.9", kindTLS, "h:1", tlsParams{serverName: "10.0.0.9"}},
		{"syslog+tls://logs.example.com", kindSyslogTLS, "logs.example.com:6514", tlsParams{}},
		{"SYSLOG+TLS://logs.example.com:10514", kindSyslogTLS, "logs.example.com:10514", tlsParams{}},
		{"syslog+tls://[2001:db8::1]?server_name=logs.example.com&ca=/ca.pem", kindSyslogTLS, "[2001:db8::1]:6514",
			tlsParams{ca: "/ca.pem", serverName: "logs.example.com"}},
	}
	for _, c := range cases {
		got, err := parseTarget(c.raw)
		if err != nil {
			t.Errorf("parseTarget(%q): %v", c.raw, err)
			continue
		}
		want := target{kind: c.kind, network: "tcp", addr: c.addr, tls: c.tls}
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
		{"tcp://127.0.0.1:5170?ca=/ca.pem", "query strings are not accepted"},
		{"syslog+tcp://h:601?ca=/ca.pem", "query strings are not accepted"},
		{"syslog:///dev/log?ca=/ca.pem", "query strings are not accepted"},
		{"unix:///run/x.sock?", "query strings are not accepted"},
		{"tls://127.0.0.1", "tls: missing port"},
		{"tls://:6514", "missing host"},
		{"tls:127.0.0.1:6514", "needs an absolute path or //host"},
		{"tls://h:1/path?ca=/ca.pem", "unexpected path"},
		{"tls://user:hunter2@h:1?ca=/ca.pem", "credentials"},
		{"tls://h:1?ca=/ca.pem#x", "fragment"},
		{"tls://h:1?", "empty query string"},
		{"tls://h:1?insecure=1", `unknown option "insecure"; accepted: ca, cert, key, server_name`},
		{"syslog+tls://h?verify=false", `unknown option "verify"`},
		{"tls://h:1?CA=/ca.pem", `unknown option "CA"`},
		{"tls://h:1?" + strings.Repeat("k", 3000) + "=1", `unknown option "kkkk`},
		{"tls://h:1?ca%=/ca.pem", "invalid URL escape"},
		{"tls://h:1?ca=/a%zz.pem", "invalid URL escape"},
		{"tls://h:1?ca=/a.pem&ca=/b.pem", "option ca given twice"},
		{"tls://h:1?ca=/a.pem&&server_name=x", "stray '&'"},
		{"tls://h:1?ca=/a.pem;server_name=x", "';' in the query string"},
		{"tls://h:1?ca", "option ca has no value"},
		{"tls://h:1?key=", "option key has no value"},
		{"tls://h:1?ca=ca.pem", "ca: path \"ca.pem\" is not absolute"},
		{"tls://h:1?ca=/etc/", "directory"},
		{"tls://h:1?ca=/etc/ca%00.pem", "control characters"},
		{"tls://h:1?ca=/etc/ca%0a.pem", "control characters"},
		{"tls://h:1?cert=/c.pem", "cert given without key"},
		{"tls://h:1?key=/k.pem&ca=/ca.pem", "key given without cert"},
		{"tls://h:1?server_name=ex$ample.com", "server_name: host"},
		{"tls://h:1?server_name=a..b", "label"},
		{"tls://h:1?server_name=%5B::1%5D", "server_name: host"},
		{"tls://h:1?server_name=" + strings.Repeat("a.", 130), "longer than"},
		{"syslog+tls:///dev/log", "syslog+tls: missing host"},
		{"syslog+tls://h:0", "not in 1-65535"},
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
		if len(msg) > len(AcceptedForms)+400 {
			t.Errorf("parseTarget(%q) error is %d bytes long: a hostile URL must not flood the log", c.raw[:min(len(c.raw), 40)], len(msg))
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
