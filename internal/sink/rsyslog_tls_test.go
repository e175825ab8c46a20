package sink

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/testkit"
)

// rsyslogTLS is an RFC 5425 input for startRsyslogdWith: imtcp with one
// of rsyslog's TLS stream drivers, serving server's certificate, as
// docs/sinks.md shows it.
type rsyslogTLS struct {
	driver string // "gtls" or "ossl"
	ca     *testkit.CA
	server testkit.Issued
	// permit, if set, is the only client certificate name taken
	// (Authmode x509/name); otherwise clients are anonymous.
	permit string
}

// inputTLS is the %inputname% of that input.
const inputTLS = "imtcp-tls"

// config returns rsyslog's global() parameters and the input() line.
func (in *rsyslogTLS) config(addr string) (global, input string) {
	_, port, _ := net.SplitHostPort(addr)
	global = fmt.Sprintf(` DefaultNetstreamDriverCAFile=%q DefaultNetstreamDriverCertFile=%q DefaultNetstreamDriverKeyFile=%q`,
		in.ca.Path, in.server.CertPath, in.server.KeyPath)
	auth := `StreamDriver.Authmode="anon"`
	if in.permit != "" {
		auth = fmt.Sprintf(`StreamDriver.Authmode="x509/name" PermittedPeer=[%q]`, in.permit)
	}
	input = fmt.Sprintf(`input(type="imtcp" name=%q address="127.0.0.1" port=%q StreamDriver.Name=%q StreamDriver.Mode="1" %s)`+"\n",
		inputTLS, port, in.driver, auth)
	return global, input
}

// waitReady waits until a TLS handshake with the input succeeds: the
// driver loaded and took the certificate.
func (in *rsyslogTLS) waitReady(t *testing.T, addr string) {
	t.Helper()
	cfg := &tls.Config{RootCAs: in.ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	var last error
	end := time.Now().Add(15 * time.Second)
	for time.Now().Before(end) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, cfg)
		if err == nil {
			c.Close()
			return
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("rsyslogd's %s input on %s never completed a TLS handshake: %v", in.driver, addr, last)
}

// rsyslogDriver skips the test unless rsyslog's TLS stream driver is
// installed; under CI=true a missing required one fails instead, so a
// provisioning gap cannot pass as green.
func rsyslogDriver(t *testing.T, driver, pkg string, required bool) {
	t.Helper()
	for _, dir := range []string{"/usr/lib/*/rsyslog", "/usr/lib/rsyslog", "/usr/lib64/rsyslog"} {
		if m, _ := filepath.Glob(filepath.Join(dir, "lmnsd_"+driver+".so")); len(m) > 0 {
			return
		}
	}
	msg := fmt.Sprintf("rsyslog's %s stream driver (lmnsd_%s.so) not found; install the Debian package %s", driver, driver, pkg)
	if required && os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func TestRsyslogReceivesRFC5425OverTLS(t *testing.T) {
	drivers := []struct {
		name, pkg string
		required  bool // scripts/provision.sh --test installs it
	}{
		{"gtls", "rsyslog-gnutls", true},
		{"ossl", "rsyslog-openssl", false},
	}
	host, _ := os.Hostname()
	wantHost := sanitizeHostname(host)
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			rsyslogdPath(t)
			rsyslogDriver(t, d.name, d.pkg, d.required)
			ca := testkit.NewCA(t, t.TempDir(), "ca")
			in := &rsyslogTLS{driver: d.name, ca: ca, server: ca.Server(t, "rsyslog", []string{"localhost"}, loopback)}
			r := startRsyslogdWith(t, freeAddr(t, "tcp"), in)

			s := mustOpen(t, "syslog+tls://"+r.tlsAddr+"?ca="+ca.Path, Options{})
			checkArrived(t, r, inputTLS, logLevels(t, s, "tls"), wantHost)
			n := 0
			for _, l := range r.rawLines(t) {
				if !strings.Contains(l, `"tag":"tls"`) {
					continue
				}
				n++
				if !rfc5424Header.MatchString(l) {
					t.Errorf("raw message is not the expected RFC 5424 form: %q", l)
				}
			}
			if n != 4 {
				t.Errorf("rsyslogd got %d raw messages over TLS, want 4", n)
			}
			if st := s.Stats(); st.Errors != 0 || st.Written != 4 || !st.Connected {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestRsyslogTLSRefusalIsADialFailure: rsyslog checks the client's name
// after a TLS 1.3 handshake the client saw succeed, then hangs up. The sink
// must take that for a failed connection: nothing counted as written,
// the event still queued, the reason in Stats, and no redial storm.
func TestRsyslogTLSRefusalIsADialFailure(t *testing.T) {
	rsyslogdPath(t)
	rsyslogDriver(t, "gtls", "rsyslog-gnutls", true)
	ca := testkit.NewCA(t, t.TempDir(), "ca")
	in := &rsyslogTLS{driver: "gtls", ca: ca, server: ca.Server(t, "rsyslog", []string{"localhost"}, loopback),
		permit: "someone-else"}
	r := startRsyslogdWith(t, freeAddr(t, "tcp"), in)
	client := ca.Client(t, "tcpstated-client")

	s := mustOpen(t, "syslog+tls://"+r.tlsAddr+"?ca="+ca.Path+"&cert="+client.CertPath+"&key="+client.KeyPath,
		Options{MaxBackoff: 200 * time.Millisecond, CloseTimeout: 100 * time.Millisecond})
	s.WriteLevel(zerolog.InfoLevel, []byte(`{"tag":"refused"}`+"\n"))
	waitFor(t, 10*time.Second, "refused connections", func() bool { return s.Stats().Errors >= 3 })
	st := s.Stats()
	if st.Written != 0 || st.Queued != 1 || st.Connected || !st.Failing ||
		!strings.Contains(st.LastError, "closed the connection right after the handshake") {
		t.Fatalf("stats %+v, want a failing sink that wrote nothing and says why", st)
	}
	if got := r.received(t); len(got) != 0 {
		t.Fatalf("rsyslogd took messages from a client it refuses: %+v", got)
	}
}
