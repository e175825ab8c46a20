package testkit

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

// CA is a certificate authority made for one test; what it signs is
// written as PEM files in Dir.
type CA struct {
	Cert *x509.Certificate
	Path string // the CA certificate's PEM file, NAME.crt
	Dir  string
	key  *ecdsa.PrivateKey
}

// Issued is a certificate a CA signed, with its key.
type Issued struct {
	CertPath, KeyPath string // NAME.crt, NAME.key
	Pair              tls.Certificate
}

// NewCA makes a CA named name and writes its certificate in dir.
func NewCA(t testing.TB, dir, name string) *CA {
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
	ca := &CA{Cert: cert, key: key, Path: filepath.Join(dir, name+".crt"), Dir: dir}
	writePEM(t, ca.Path, "CERTIFICATE", der)
	return ca
}

// Pool is the CA as a verifier's trust store.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Server issues a server certificate for these DNS names and addresses.
func (ca *CA) Server(t testing.TB, name string, dnsNames []string, ips ...net.IP) Issued {
	return ca.issue(t, name, x509.ExtKeyUsageServerAuth, dnsNames, ips)
}

// Client issues a client certificate with common name name.
func (ca *CA) Client(t testing.TB, name string) Issued {
	return ca.issue(t, name, x509.ExtKeyUsageClientAuth, nil, nil)
}

func (ca *CA) issue(t testing.TB, name string, usage x509.ExtKeyUsage, dnsNames []string, ips []net.IP) Issued {
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	is := Issued{CertPath: filepath.Join(ca.Dir, name+".crt"), KeyPath: filepath.Join(ca.Dir, name+".key")}
	writePEM(t, is.CertPath, "CERTIFICATE", der)
	writePEM(t, is.KeyPath, "PRIVATE KEY", keyDER)
	if is.Pair, err = tls.LoadX509KeyPair(is.CertPath, is.KeyPath); err != nil {
		t.Fatal(err)
	}
	return is
}

// PKI is a CA with a server certificate for localhost and the loopback
// addresses (server.crt, server.key) and a client one (client.crt,
// client.key), in one directory.
type PKI struct {
	*CA
	Server, Client Issued
}

// NewPKI writes ca.crt, server.* and client.* in dir.
func NewPKI(t testing.TB, dir string) *PKI {
	t.Helper()
	ca := NewCA(t, dir, "ca")
	return &PKI{CA: ca,
		Server: ca.Server(t, "server", []string{"localhost"}, net.IPv4(127, 0, 0, 1), net.IPv6loopback),
		Client: ca.Client(t, "client"),
	}
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
