package sink

import (
	"crypto/tls"

	"github.com/tcpstated/tcpstated/internal/tlsfiles"
)

// clientConfig reads the PEM files p names and builds the TLS client
// config. Open calls it, so a bad file stops the daemon at start with the
// path and what is wrong with it, instead of failing every dial later.
// host is the URL's host, the name verified when server_name is not given
// (an IP literal is then checked against the certificate's IP SANs).
func (p tlsParams) clientConfig(host string) (*tls.Config, error) {
	name := p.serverName
	if name == "" {
		name = host
	}
	return tlsfiles.Files{CA: p.ca, Cert: p.cert, Key: p.key}.Client(name)
}
