package sink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test, with the
// certificates it signs written as PEM files under dir.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	path string // the CA certificate's PEM file: a sink's ca=
	dir  string
}

// issued is a certificate signed by a testCA, with its key.
type issued struct {
	certPath, keyPath string
	pair              tls.Certificate
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := &testCA{cert: cert, key: key, path: filepath.Join(dir, name+".pem"), dir: dir}
	writePEM(t, ca.path, "CERTIFICATE", der)
	return ca
}

// pool is the CA as a verifier's trust store.
func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// server issues a server certificate for the given DNS names and IPs.
func (ca *testCA) server(t testing.TB, name string, dnsNames []string, ips ...net.IP) issued {
	return ca.issue(t, name, x509.ExtKeyUsageServerAuth, dnsNames, ips)
}

// client issues a client certificate, as a collector that checks its
// senders wants.
func (ca *testCA) client(t testing.TB, name string) issued {
	return ca.issue(t, name, x509.ExtKeyUsageClientAuth, nil, nil)
}

func (ca *testCA) issue(t testing.TB, name string, usage x509.ExtKeyUsage, dnsNames []string, ips []net.IP) issued {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	is := issued{certPath: filepath.Join(ca.dir, name+".pem"), keyPath: filepath.Join(ca.dir, name+"-key.pem")}
	writePEM(t, is.certPath, "CERTIFICATE", der)
	writePEM(t, is.keyPath, "PRIVATE KEY", keyDER)
	if is.pair, err = tls.LoadX509KeyPair(is.certPath, is.keyPath); err != nil {
		t.Fatal(err)
	}
	return is
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
