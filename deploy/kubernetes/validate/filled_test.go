package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
)

// pki is a throwaway CA and a server certificate for the name the scrape
// job checks, as docs/deploy.md makes them with openssl.
type pki struct {
	caPEM, certPEM, keyPEM []byte
	ca                     *x509.Certificate
	caKey                  *ecdsa.PrivateKey
}

func newPKI(t *testing.T, serverName string) *pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tcpstated-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &pki{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), ca: ca, caKey: caKey}
	p.certPEM, p.keyPEM = p.issue(t, serverName, x509.ExtKeyUsageServerAuth)
	return p
}

func (p *pki) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames:  []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

const password = "correct horse battery staple"

// filledSecret is web-config-secret.yaml with its placeholders filled in.
func filledSecret(t *testing.T, p *pki) *corev1.Secret {
	t.Helper()
	m, err := Decode([]byte(readFile(t, secretPath)))
	if err != nil {
		t.Fatal(err)
	}
	s := m.Secrets[0]
	hash, err := bcrypt.GenerateFromPassword([]byte(password), 10)
	if err != nil {
		t.Fatal(err)
	}
	wc := s.StringData["web-config.yml"]
	if !strings.Contains(wc, "REPLACE-with-a-bcrypt-hash") {
		t.Fatal("the template's hash placeholder moved: update this test")
	}
	s.StringData["web-config.yml"] = strings.Replace(wc, "REPLACE-with-a-bcrypt-hash", "'"+string(hash)+"'", 1)
	s.StringData["tls.crt"] = string(p.certPEM)
	s.StringData["tls.key"] = string(p.keyPEM)
	return s
}

// deployment is the shipped DaemonSet and scrape job with the Secret s.
func deployment(t *testing.T, s *corev1.Secret, scrape string) *Manifest {
	t.Helper()
	m, err := Decode([]byte(readManifest(t)))
	if err != nil {
		t.Fatal(err)
	}
	m.Secrets = append(m.Secrets, s)
	if m.Scrape, err = ParseScrapeConfig([]byte(scrape)); err != nil {
		t.Fatal(err)
	}
	return m
}

func wantErrors(t *testing.T, m *Manifest, want string) {
	t.Helper()
	var msgs []string
	for _, e := range Check(m) {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	switch {
	case want == "" && len(msgs) > 0:
		t.Fatalf("rejected:\n%s", all)
	case want != "" && !strings.Contains(all, want):
		t.Fatalf("errors do not mention %q:\n%s", want, all)
	}
}

func TestFilledSecretIsValid(t *testing.T) {
	p := newPKI(t, "tcpstated")
	wantErrors(t, deployment(t, filledSecret(t, p), readFile(t, scrapePath)), "")
}

func TestFilledSecretFromData(t *testing.T) {
	// kubectl create secret --from-file writes data (base64), not stringData.
	s := filledSecret(t, newPKI(t, "tcpstated"))
	s.Data = map[string][]byte{}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
	wantErrors(t, deployment(t, s, readFile(t, scrapePath)), "")
}

func TestFilledSecretIsLoaded(t *testing.T) {
	p := newPKI(t, "tcpstated")
	t.Run("key of another certificate", func(t *testing.T) {
		s := filledSecret(t, p)
		_, other := p.issue(t, "tcpstated", x509.ExtKeyUsageServerAuth)
		s.StringData["tls.key"] = string(other)
		wantErrors(t, deployment(t, s, readFile(t, scrapePath)), "web-config.yml does not load")
	})
	t.Run("not PEM", func(t *testing.T) {
		s := filledSecret(t, p)
		s.StringData["tls.crt"] = "-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n"
		wantErrors(t, deployment(t, s, readFile(t, scrapePath)), "does not load")
	})
	t.Run("bcrypt cost out of range", func(t *testing.T) {
		s := filledSecret(t, p)
		wc := s.StringData["web-config.yml"]
		i := strings.Index(wc, "$2a$10$")
		if i < 0 {
			t.Fatalf("no hash in %s", wc)
		}
		s.StringData["web-config.yml"] = wc[:i] + "$2a$99$" + wc[i+7:]
		wantErrors(t, deployment(t, s, readFile(t, scrapePath)), "does not load")
	})
}

// Client certificates are the other authentication the daemon accepts:
// verified against a CA in the Secret, with a scrape job that presents one.
func TestClientCertificateAuth(t *testing.T) {
	p := newPKI(t, "tcpstated")
	s := filledSecret(t, p)
	wc := s.StringData["web-config.yml"]
	i := strings.Index(wc, "# user: bcrypt hash")
	if i < 0 {
		t.Fatal("the template's basic_auth_users comment moved: update this test")
	}
	s.StringData["web-config.yml"] = strings.Replace(wc[:i], "  min_version: TLS12\n",
		"  min_version: TLS12\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n", 1)
	s.StringData["client-ca.crt"] = string(p.caPEM)

	scrape := readFile(t, scrapePath)
	basic := "    basic_auth:\n      username: prometheus\n      password_file: /etc/prometheus/secrets/tcpstated-scrape/password\n"
	certs := "      cert_file: /etc/prometheus/secrets/tcpstated-scrape/client.crt\n      key_file: /etc/prometheus/secrets/tcpstated-scrape/client.key\n"
	if !strings.Contains(scrape, basic) {
		t.Fatal("the scrape job's basic_auth moved: update this test")
	}
	withCerts := strings.Replace(strings.Replace(scrape, basic, "", 1), "      server_name: tcpstated\n", "      server_name: tcpstated\n"+certs, 1)
	wantErrors(t, deployment(t, s, withCerts), "")
	// Without a client certificate the job cannot authenticate.
	wantErrors(t, deployment(t, s, strings.Replace(scrape, basic, "", 1)), "has no basic_auth")
}

// The template, filled in, served by the exporter toolkit as the daemon
// serves it, answers a client set up as the scrape job is, and only that.
func TestScrapeJobReachesTheListener(t *testing.T) {
	p := newPKI(t, "tcpstated")
	s := filledSecret(t, p)
	dir := t.TempDir()
	for k, v := range secretFiles(s) {
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := ParseScrapeConfig([]byte(readFile(t, scrapePath)))
	if err != nil {
		t.Fatal(err)
	}
	job := sc.ScrapeConfigs[0]

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tcpstated_up 1\n")
	}), ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	conf := filepath.Join(dir, "web-config.yml")
	noSystemd := false
	flags := &web.FlagConfig{WebListenAddresses: &[]string{ln.Addr().String()}, WebSystemdSocket: &noSystemd, WebConfigFile: &conf}
	done := make(chan error, 1)
	go func() { done <- web.Serve(ln, srv, flags, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	get := func(scheme, serverName, user, pass string) (int, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName},
		}}
		req, _ := http.NewRequest("GET", scheme+"://"+ln.Addr().String()+job.MetricsPath, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	if code, err := get(job.Scheme, job.TLSConfig.ServerName, job.BasicAuth.Username, password); err != nil || code != 200 {
		t.Fatalf("as the scrape job: %d, %v; want 200", code, err)
	}
	if code, err := get(job.Scheme, job.TLSConfig.ServerName, "", ""); err != nil || code != 401 {
		t.Errorf("without credentials: %d, %v; want 401", code, err)
	}
	if code, err := get(job.Scheme, job.TLSConfig.ServerName, job.BasicAuth.Username, "wrong"); err != nil || code != 401 {
		t.Errorf("with a wrong password: %d, %v; want 401", code, err)
	}
	if _, err := get(job.Scheme, "192.0.2.1", job.BasicAuth.Username, password); err == nil {
		t.Error("the node's address verified: the certificate should name only the server_name")
	}
	if code, err := get("http", "", job.BasicAuth.Username, password); err == nil && code == 200 {
		t.Error("plain http was served")
	}
}
