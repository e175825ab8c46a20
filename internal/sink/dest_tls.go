package sink

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

const (
	// goodbyeWait bounds the close_notify sent when a healthy TLS
	// connection is closed; crypto/tls alone would wait up to 5 s for a
	// peer that does not read.
	goodbyeWait = time.Second
	// verdictWait is how long a TLS 1.3 client whose certificate the
	// server asked for listens, after its handshake, for a refusal.
	verdictWait = 500 * time.Millisecond
)

// startTLS runs the client handshake on a fresh connection, within the
// dial's deadline. The sink writes nothing before it has verified the
// server, so an event never goes out in clear or to an impostor; a
// failure is the dial's failure, counted and logged like a refused one.
func startTLS(raw net.Conn, cfg *tls.Config, deadline time.Time) (*tls.Conn, error) {
	fail := func(err error) (*tls.Conn, error) {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", raw.RemoteAddr(), err)
	}
	cfg, asked := noteCertRequest(cfg)
	c := tls.Client(raw, cfg)
	if err := raw.SetDeadline(deadline); err != nil {
		return fail(err)
	}
	if err := c.Handshake(); err != nil {
		return fail(err)
	}
	if *asked && c.ConnectionState().Version >= tls.VersionTLS13 {
		if err := awaitVerdict(c, deadline); err != nil {
			return fail(err)
		}
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return fail(err)
	}
	return c, nil
}

// noteCertRequest returns a copy of cfg that offers its client
// certificate, if any, whenever the server asks for one, and records that
// it asked.
func noteCertRequest(cfg *tls.Config) (*tls.Config, *bool) {
	asked := new(bool)
	cfg = cfg.Clone()
	own := cfg.Certificates
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		*asked = true
		if len(own) > 0 {
			// Offered even if not signed by a CA the server names: its
			// refusal then says what is wrong with it.
			return &own[0], nil
		}
		return &tls.Certificate{}, nil // none: the server decides
	}
	return cfg, asked
}

// awaitVerdict listens briefly for a TLS 1.3 server refusing the client's
// certificate. In 1.3 the client's handshake ends before the server has
// checked that certificate, and a refusal comes after, as an alert or a
// hang-up. Without this wait the first events would go into a session the
// server is about to drop, and be lost.
func awaitVerdict(c *tls.Conn, deadline time.Time) error {
	until := time.Now().Add(verdictWait)
	if deadline.Before(until) {
		until = deadline
	}
	if err := c.SetReadDeadline(until); err != nil {
		return err
	}
	var b [1]byte
	_, err := c.Read(b[:]) // collectors send nothing: a timeout is the good outcome
	var ne net.Error
	switch {
	case err == nil, errors.As(err, &ne) && ne.Timeout():
		return nil // a timeout leaves a tls.Conn usable
	case errors.Is(err, io.EOF):
		return errors.New("the server closed the connection right after the handshake; did it refuse the client certificate?")
	}
	return err
}

// closeTLS ends a TLS connection. A healthy one says close_notify, so the
// collector sees an orderly end rather than a truncation; a broken one (a
// write failed, the peer left) is dropped: after a failed write the TLS
// state is spoilt, and a goodbye could only hold up the drainer.
func closeTLS(c *tls.Conn, raw net.Conn, healthy bool) {
	if !healthy {
		raw.Close()
		return
	}
	cut := time.AfterFunc(goodbyeWait, func() { raw.Close() })
	c.Close()
	cut.Stop()
}
