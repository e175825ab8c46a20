package daemon

import (
	"fmt"
	"net"
	"os"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
)

// webSecurity is what a --web.config.file gives the network listener.
type webSecurity struct {
	TLS  bool // a server certificate
	Auth bool // basic auth users, or client certificates that are verified
	// Open: the listener serves beyond loopback, or the socket table, to
	// anyone who connects (--allow-unauthenticated-listen said so).
	Open bool
}

// readWebConfig validates path with the exporter toolkit, then reads what
// it secures. The toolkit's own types are used so the two cannot disagree.
func readWebConfig(path string) (webSecurity, error) {
	if err := web.Validate(path); err != nil {
		return webSecurity{}, fmt.Errorf("--web.config.file %s: %w", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return webSecurity{}, fmt.Errorf("--web.config.file: %w", err)
	}
	var c web.Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return webSecurity{}, fmt.Errorf("--web.config.file %s: %w", path, err)
	}
	tlsOn := c.TLSConfig.TLSCertPath != "" || c.TLSConfig.TLSCert != ""
	return webSecurity{
		TLS:  tlsOn,
		Auth: len(c.Users) > 0 || tlsOn && c.TLSConfig.ClientAuth == "RequireAndVerifyClientCert",
	}, nil
}

// listenPolicy refuses a network listener that would show this host's
// connections to anyone who reaches it: beyond loopback, or with the socket
// table on it, the listener needs TLS and authentication unless the user
// allowed otherwise in so many words.
func listenPolicy(opt Options) (webSecurity, error) {
	var sec webSecurity
	if opt.Listen == "" {
		return sec, nil
	}
	if opt.WebConfigFile != "" {
		var err error
		if sec, err = readWebConfig(opt.WebConfigFile); err != nil {
			return sec, err
		}
	}
	if sec.TLS && sec.Auth {
		return sec, nil
	}
	loopback, err := isLoopback(opt.Listen)
	switch {
	case err != nil && opt.AllowUnauthenticated:
		return sec, nil // binding it says what is wrong
	case err != nil:
		return sec, fmt.Errorf("--listen %s: %w", opt.Listen, err)
	}
	var why string
	switch {
	case !loopback:
		why = fmt.Sprintf("--listen %s reaches beyond loopback", opt.Listen)
	case opt.ListenAPI:
		why = fmt.Sprintf("--listen-api puts the socket table on %s, which every local user can reach", opt.Listen)
	default:
		return sec, nil
	}
	if opt.AllowUnauthenticated {
		sec.Open = true
		return sec, nil
	}
	missing := "TLS and authentication"
	switch {
	case sec.TLS:
		missing = "authentication"
	case sec.Auth:
		missing = "TLS"
	}
	return sec, fmt.Errorf("%s without %s: it would show this host's connections, processes and peers to anyone who reaches it. "+
		"Give --web.config.file a tls_server_config (cert_file, key_file) and basic_auth_users or client_auth_type: RequireAndVerifyClientCert (docs/deploy.md), "+
		"or listen on 127.0.0.1 and use the API socket (--api-socket), "+
		"or pass --allow-unauthenticated-listen to serve it to anyone who can connect", why, missing)
}

// isLoopback says whether every address host:port may bind is loopback.
// Names other than localhost count as reachable: they may resolve to
// anything.
func isLoopback(hostport string) (bool, error) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
