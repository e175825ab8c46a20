// Package tlsfiles builds TLS client configurations from PEM files named
// by an operator (a sink's ca=/cert=/key=, the clients' --ca-file and
// --cert-file/--key-file), with errors that say which file is wrong and how.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// MaxFile bounds what is read of a CA, cert or key file: a path that names
// /dev/zero or a huge log must not eat the reader's memory.
const MaxFile = 1 << 20

// Files names a CA bundle (empty: the system's roots) and a client
// certificate with its key (both or neither).
type Files struct {
	CA, Cert, Key string
}

// Client reads the files and builds a client config that verifies the
// server's certificate for serverName (empty: the dialled host), TLS 1.2
// at least.
func (f Files) Client(serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("a client certificate and its key go together")
	}
	if f.CA != "" { // else RootCAs stays nil: the system's roots
		pool, err := loadCAs(f.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if f.Cert != "" {
		pair, err := loadKeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func loadCAs(path string) (*x509.CertPool, error) {
	_, blocks, err := readPEM("ca", path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		n++
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca file %s: certificate %d: %v", path, n, err)
		}
		pool.AddCert(c)
	}
	if n == 0 {
		return nil, fmt.Errorf("ca file %s: no CERTIFICATE in it (found %s)", path, blockTypes(blocks))
	}
	return pool, nil
}

func loadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	certPEM, certBlocks, err := readPEM("cert", certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	if !hasBlock(certBlocks, func(t string) bool { return t == "CERTIFICATE" }) {
		return tls.Certificate{}, fmt.Errorf("cert file %s: no CERTIFICATE in it (found %s)", certPath, blockTypes(certBlocks))
	}
	keyPEM, keyBlocks, err := readPEM("key", keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	for _, b := range keyBlocks {
		if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] == "4,ENCRYPTED" {
			return tls.Certificate{}, fmt.Errorf("key file %s: the key is encrypted; give it unencrypted (the daemon cannot ask for a passphrase)", keyPath)
		}
	}
	if !hasBlock(keyBlocks, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }) {
		return tls.Certificate{}, fmt.Errorf("key file %s: no PRIVATE KEY in it (found %s)", keyPath, blockTypes(keyBlocks))
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil { // "private key does not match public key", mostly
		return tls.Certificate{}, fmt.Errorf("cert file %s with key file %s: %v", certPath, keyPath, err)
	}
	return pair, nil
}

// readPEM reads a small regular file and splits it into PEM blocks; a
// file with none is refused here, naming which option gave it.
func readPEM(what, path string) ([]byte, []*pem.Block, error) {
	fail := func(format string, a ...any) ([]byte, []*pem.Block, error) {
		return nil, nil, fmt.Errorf("%s file %s: %s", what, path, fmt.Sprintf(format, a...))
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return fail("%v", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return fail("%v", err)
	} else if !fi.Mode().IsRegular() {
		return fail("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFile+1))
	if err != nil {
		return fail("%v", err)
	}
	if len(data) > MaxFile {
		return fail("larger than %d bytes: not a PEM file", MaxFile)
	}
	var blocks []*pem.Block
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return fail("not PEM (no -----BEGIN ...----- block; a DER file needs converting, e.g. openssl x509 -inform der)")
	}
	return data, blocks, nil
}

func hasBlock(blocks []*pem.Block, want func(string) bool) bool {
	for _, b := range blocks {
		if want(b.Type) {
			return true
		}
	}
	return false
}

// blockTypes names what a PEM file holds, for an error about what it
// lacks: the first few kinds of block, each once.
func blockTypes(blocks []*pem.Block) string {
	var types []string
	for _, b := range blocks {
		if len(types) == 4 {
			return strings.Join(types, ", ") + ", ..."
		}
		if t := shortQuote(b.Type); !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return strings.Join(types, ", ")
}

// shortQuote quotes a block type read from a file, cut short: the file may
// hold anything.
func shortQuote(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.QuoteToASCII(s[:max]) + "..."
	}
	return strconv.QuoteToASCII(s)
}
