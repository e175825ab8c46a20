package sink

import (
	"crypto/tls"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/testkit"
	"github.com/tcpstated/tcpstated/internal/tlsfiles"
)

// eventMarker is in every testEvent: it must never show on the wire.
const eventMarker = `"comm":"nginx"`

var loopback = net.IPv4(127, 0, 0, 1)

// tlsURL is a tls:// sink URL for addr with the given options.
func tlsURL(addr string, opts ...string) string {
	u := "tls://" + addr
	if len(opts) > 0 {
		u += "?" + strings.Join(opts, "&")
	}
	return u
}

func serverConfig(cert testkit.Issued) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert.Pair}}
}

// waitClosed waits for the collector to have finished with cc.
func waitClosed(t *testing.T, cc *collectorConn) {
	t.Helper()
	select {
	case <-cc.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the collector's connection did not end within 10s")
	}
}

func TestTLSSinkDeliversByteExact(t *testing.T) {
	ca := testkit.NewCA(t, t.TempDir(), "ca")
	server := ca.Server(t, "server", []string{"localhost"}, loopback)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cfg := serverConfig(server)
			cfg.MaxVersion = version
			col := startTLSCollector(t, cfg)
			s := mustOpen(t, tlsURL(col.addr, "ca="+ca.Path), Options{})

			var want []byte
			for i := range 300 {
				ev := testEvent(i)
				want = append(want, ev...)
				s.Write(ev)
			}
			waitFor(t, 10*time.Second, "300 events at the collector", func() bool {
				conns := col.connections()
				return len(conns) == 1 && len(conns[0].data.String()) >= len(want)
			})
			if st := s.Stats(); st.Written != 300 || st.Errors != 0 || !st.Connected || st.Failing {
				t.Fatalf("stats %+v", st)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			cc := col.connections()[0]
			waitClosed(t, cc)
			if got := cc.data.String(); got != string(want) {
				t.Fatalf("the collector got %d bytes that differ from the %d sent", len(got), len(want))
			}
			if cc.end != io.EOF || cc.state.Version != version {
				t.Fatalf("session version %#x ended with %v", cc.state.Version, cc.end)
			}
			// An orderly end: the sink said close_notify. TLS 1.2 shows the
			// alert's record type on the wire (1.3 hides it).
			if typ := lastRecordType(t, []byte(cc.wire.String())); version == tls.VersionTLS12 && typ != recordAlert {
				t.Errorf("the last record was of type %#x, not an alert (close_notify)", typ)
			}
			col.checkNothingInClear(t, eventMarker)
		})
	}
}

const recordAlert = 0x15

// lastRecordType walks the TLS records of a connection's bytes.
func lastRecordType(t *testing.T, wire []byte) byte {
	t.Helper()
	var typ byte
	for len(wire) > 0 {
		if len(wire) < 5 {
			t.Fatalf("a TLS record header cut short: % x", wire)
		}
		n := 5 + (int(wire[3])<<8 | int(wire[4]))
		if n > len(wire) {
			t.Fatalf("a TLS record of %d bytes cut at %d", n, len(wire))
		}
		typ, wire = wire[0], wire[n:]
	}
	return typ
}

func TestTLSSinkWithClientCertificate(t *testing.T) {
	ca := testkit.NewCA(t, t.TempDir(), "ca")
	cfg := serverConfig(ca.Server(t, "server", []string{"localhost"}, loopback))
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = ca.Pool()
	client := ca.Client(t, "tcpstated-client")

	t.Run("with cert and key it delivers", func(t *testing.T) {
		col := startTLSCollector(t, cfg)
		s := mustOpen(t, tlsURL(col.addr, "ca="+ca.Path, "cert="+client.CertPath, "key="+client.KeyPath), Options{})
		for i := range 5 {
			s.Write(testEvent(i))
		}
		waitFor(t, 10*time.Second, "5 events at the collector", func() bool {
			conns := col.connections()
			return len(conns) == 1 && len(eventIDs(t, []byte(conns[0].data.String()), true)) == 5
		})
		s.Close()
		cc := col.connections()[0]
		waitClosed(t, cc)
		if peers := cc.state.PeerCertificates; len(peers) == 0 || peers[0].Subject.CommonName != "tcpstated-client" {
			t.Fatalf("the collector did not see the client certificate: %v", peers)
		}
		col.checkNothingInClear(t, eventMarker)
	})

	// Under TLS 1.3 the client's handshake ends before the server has
	// looked at its certificate: the sink waits for the verdict, so the
	// refusal is a failed connection and no event goes into the session.
	t.Run("without them it is a failed connection", func(t *testing.T) {
		col := startTLSCollector(t, cfg)
		var logs lockedBuffer
		s := mustOpen(t, tlsURL(col.addr, "ca="+ca.Path), Options{MaxBackoff: 200 * time.Millisecond,
			CloseTimeout: 100 * time.Millisecond, Logger: zerolog.New(&logs)})
		s.Write(testEvent(1))
		waitFor(t, 10*time.Second, "refused connections", func() bool { return s.Stats().Errors >= 3 })
		st := s.Stats()
		if st.Written != 0 || st.Queued != 1 || st.Connected || !st.Failing ||
			!strings.Contains(st.LastError, "TLS handshake with "+col.addr+": remote error: tls: certificate required") {
			t.Fatalf("stats %+v, want a failing sink that wrote nothing and says why", st)
		}
		if w := logs.String(); !strings.Contains(w, "cannot open sink") || !strings.Contains(w, "certificate required") {
			t.Errorf("want a warning saying why, got:\n%s", w)
		}
		for i, cc := range col.connections() {
			waitClosed(t, cc)
			if cc.handshake == nil || cc.data.String() != "" {
				t.Errorf("connection %d: handshake %v, received %q", i, cc.handshake, cc.data.String())
			}
		}
	})
}

// TestTLSSinkRefusesUnverifiedServers: a server the sink cannot verify
// gets no event, the failure is counted and logged like a refused dial,
// and Stats says why in crypto/tls's words.
func TestTLSSinkRefusesUnverifiedServers(t *testing.T) {
	ca := testkit.NewCA(t, t.TempDir(), "ca")
	other := testkit.NewCA(t, t.TempDir(), "other-ca")
	byName := ca.Server(t, "by-name", []string{"localhost"}) // no IP SAN
	byBoth := ca.Server(t, "by-both", []string{"localhost"}, loopback)
	cases := []struct {
		name   string
		server testkit.Issued
		opts   []string
		want   string
	}{
		{"another CA", byBoth, []string{"ca=" + other.Path}, "x509: certificate signed by unknown authority"},
		{"the system roots", byBoth, nil, "x509: certificate signed by unknown authority"},
		{"a wrong server_name", byBoth, []string{"ca=" + ca.Path, "server_name=logs.example.com"},
			"x509: certificate is valid for localhost, not logs.example.com"},
		{"an IP host without IP SAN", byName, []string{"ca=" + ca.Path},
			"x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			col := startTLSCollector(t, serverConfig(c.server))
			var logs lockedBuffer
			url := tlsURL(col.addr, c.opts...)
			s := mustOpen(t, url, Options{MaxBackoff: 50 * time.Millisecond, CloseTimeout: 100 * time.Millisecond, Logger: zerolog.New(&logs)})
			for i := range 3 {
				s.Write(testEvent(i))
			}
			waitFor(t, 10*time.Second, "several failed handshakes", func() bool { return s.Stats().Errors >= 3 })
			st := s.Stats()
			if st.Connected || !st.Failing || st.Written != 0 || st.Queued != 3 || !strings.Contains(st.LastError, c.want) ||
				!strings.Contains(st.LastError, "TLS handshake with "+col.addr) {
				t.Fatalf("stats %+v, want failing, nothing written, 3 queued, and an error saying %q", st, c.want)
			}
			waitFor(t, 5*time.Second, "the warning", func() bool { return strings.Contains(logs.String(), c.want) })
			if w := logs.String(); strings.Count(w, `"level":"warn"`) != 1 || !strings.Contains(w, "cannot open sink") ||
				!strings.Contains(w, col.addr) {
				t.Errorf("want one warning naming the sink and the failure, got:\n%s", w)
			}
			for i, cc := range col.connections() {
				waitClosed(t, cc)
				if cc.handshake == nil {
					t.Errorf("connection %d: the handshake passed", i)
				}
				if cc.data.String() != "" {
					t.Errorf("connection %d: the collector received %q", i, cc.data.String())
				}
			}
			col.checkNothingInClear(t, eventMarker)
		})
	}
}

func TestTLSSinkRefusesOldProtocolVersions(t *testing.T) {
	ca := testkit.NewCA(t, t.TempDir(), "ca")
	cfg := serverConfig(ca.Server(t, "server", []string{"localhost"}, loopback))
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	col := startTLSCollector(t, cfg)
	s := mustOpen(t, tlsURL(col.addr, "ca="+ca.Path), Options{MaxBackoff: 50 * time.Millisecond, CloseTimeout: 100 * time.Millisecond})
	s.Write(testEvent(1))
	waitFor(t, 10*time.Second, "a failed handshake", func() bool { return s.Stats().Errors >= 1 })
	if st := s.Stats(); st.Written != 0 || !strings.Contains(st.LastError, "protocol version") {
		t.Fatalf("stats %+v, want a protocol version failure", st)
	}
	col.checkNothingInClear(t, eventMarker)
}

// TestTLSSinkReconnectsAfterCollectorRestart: the peer watch works on a
// TLS session: an idle sink notices the hang-up and reconnects.
func TestTLSSinkReconnectsAfterCollectorRestart(t *testing.T) {
	ca := testkit.NewCA(t, t.TempDir(), "ca")
	cfg := serverConfig(ca.Server(t, "server", []string{"localhost"}, loopback))
	col := startTLSCollector(t, cfg)
	s := mustOpen(t, tlsURL(col.addr, "ca="+ca.Path), Options{MaxBackoff: 50 * time.Millisecond})
	s.Write(testEvent(1))
	waitFor(t, 10*time.Second, "the first event", func() bool {
		conns := col.connections()
		return len(conns) == 1 && len(eventIDs(t, []byte(conns[0].data.String()), true)) == 1
	})
	col.connections()[0].raw.Close() // the collector drops the session
	waitFor(t, 10*time.Second, "the sink to reconnect", func() bool {
		return len(col.connections()) == 2 && s.Stats().Reconnects == 1
	})
	s.Write(testEvent(2))
	waitFor(t, 10*time.Second, "the second event on the new session", func() bool {
		return len(eventIDs(t, []byte(col.connections()[1].data.String()), true)) == 1
	})
	if st := s.Stats(); st.Written != 2 || st.Dropped != 0 || !st.Connected {
		t.Fatalf("stats %+v", st)
	}
}

// TestOpenRefusesBadTLSFiles: CA, cert and key files are read at Open, so
// a bad one stops the daemon at start, saying which file and what is wrong.
func TestOpenRefusesBadTLSFiles(t *testing.T) {
	ca := testkit.NewCA(t, t.TempDir(), "ca")
	client := ca.Client(t, "client")
	other := ca.Client(t, "other")
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := file("garbage.pem", "not a certificate\n")
	badCert := file("bad-cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	encrypted := file("encrypted.pem", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"+
		"DEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n-----END RSA PRIVATE KEY-----\n")
	big := file("big.pem", strings.Repeat("x", tlsfiles.MaxFile+1))
	missing := filepath.Join(dir, "missing.pem")

	cases := []struct {
		opts []string
		want string
	}{
		{[]string{"ca=" + missing}, "ca file " + missing + ": no such file or directory"},
		{[]string{"ca=" + dir}, "ca file " + dir + ": not a regular file"},
		{[]string{"ca=/dev/zero"}, "ca file /dev/zero: not a regular file"},
		{[]string{"ca=" + big}, "larger than"},
		{[]string{"ca=" + garbage}, "ca file " + garbage + ": not PEM"},
		{[]string{"ca=" + client.KeyPath}, `ca file ` + client.KeyPath + `: no CERTIFICATE in it (found "PRIVATE KEY")`},
		{[]string{"ca=" + badCert}, "ca file " + badCert + ": certificate 1: x509:"},
		{[]string{"cert=" + garbage, "key=" + client.KeyPath}, "cert file " + garbage + ": not PEM"},
		{[]string{"cert=" + client.KeyPath, "key=" + client.KeyPath}, "cert file " + client.KeyPath + ": no CERTIFICATE"},
		{[]string{"cert=" + client.CertPath, "key=" + client.CertPath}, "key file " + client.CertPath + ": no PRIVATE KEY"},
		{[]string{"cert=" + client.CertPath, "key=" + encrypted}, "the key is encrypted"},
		{[]string{"cert=" + client.CertPath, "key=" + other.KeyPath},
			"cert file " + client.CertPath + " with key file " + other.KeyPath + ": tls: private key does not match public key"},
		{[]string{"cert=" + client.CertPath, "key=" + missing}, "key file " + missing + ": no such file"},
	}
	for _, scheme := range []string{"tls", "syslog+tls"} {
		for _, c := range cases {
			raw := scheme + "://127.0.0.1:6514?" + strings.Join(c.opts, "&")
			s, err := Open(raw, Options{})
			if err == nil {
				s.Close()
				t.Errorf("Open(%q) accepted it, want an error about %q", raw, c.want)
				continue
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), scheme+"://127.0.0.1:6514") {
				t.Errorf("Open(%q) = %q, want it to name the sink and say %q", raw, err, c.want)
			}
		}
	}
	// The good files open (escaped as a URL may carry them).
	mustOpen(t, "tls://127.0.0.1:1?"+strings.Join([]string{"ca=" + ca.Path, "cert=" + client.CertPath,
		"key=" + url.PathEscape(client.KeyPath)}, "&"), Options{})
}

func TestTLSConfigIsStrict(t *testing.T) {
	cfg, err := tlsParams{serverName: ""}.clientConfig("logs.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.InsecureSkipVerify || cfg.ServerName != "logs.example.com" ||
		cfg.RootCAs != nil || cfg.VerifyPeerCertificate != nil {
		t.Fatalf("config %+v", cfg)
	}
	cfg, err = tlsParams{serverName: "collector.internal"}.clientConfig("10.0.0.5")
	if err != nil || cfg.ServerName != "collector.internal" {
		t.Fatalf("server_name not used: %v %+v", err, cfg)
	}
}
