package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tcpstated/tcpstated/internal/tlsfiles"
)

// clientFlags say how sockets, top and health reach a daemon.
type clientFlags struct {
	addr, caFile, certFile, keyFile, serverName, username, passwordFile string
}

func addClientFlags(fs *flag.FlagSet) *clientFlags {
	c := &clientFlags{}
	fs.StringVar(&c.addr, "addr", DefaultSocket, "the daemon: its API socket (a path), host:port or http://host:port, or https://host:port")
	fs.StringVar(&c.caFile, "ca-file", "", "CA certificates (PEM) that sign the daemon's certificate, for https (default: the system's)")
	fs.StringVar(&c.certFile, "cert-file", "", "client certificate (PEM), for a daemon that verifies clients")
	fs.StringVar(&c.keyFile, "key-file", "", "the client certificate's key (PEM)")
	fs.StringVar(&c.serverName, "server-name", "", "name the daemon's certificate must carry (default: the host in --addr)")
	fs.StringVar(&c.username, "username", "", "basic auth user; the password comes from --password-file or $TCPSTATED_PASSWORD")
	fs.StringVar(&c.passwordFile, "password-file", "", "file holding the basic auth password (its first line)")
	return c
}

// apiClient asks one daemon.
type apiClient struct {
	base       url.URL
	where      string // --addr, for messages
	http       *http.Client
	user, pass string
}

// maxAnswer bounds what is read from a daemon: 100000 rows fit.
const maxAnswer = 256 << 20

func (c *clientFlags) client() (*apiClient, error) {
	a := &apiClient{where: c.addr}
	tr := &http.Transport{ResponseHeaderTimeout: 10 * time.Second, MaxIdleConns: 2}
	switch {
	case strings.HasPrefix(c.addr, "/"):
		path := c.addr
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}
		a.base = url.URL{Scheme: "http", Host: "tcpstated"}
	case strings.HasPrefix(c.addr, "https://"), strings.HasPrefix(c.addr, "http://"):
		u, err := url.Parse(c.addr)
		if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("--addr %q: want https://host:port or http://host:port", c.addr)
		}
		a.base = url.URL{Scheme: u.Scheme, Host: u.Host}
	default:
		if _, _, err := net.SplitHostPort(c.addr); err != nil {
			return nil, fmt.Errorf("--addr %q: want a socket path, host:port, http://host:port or https://host:port", c.addr)
		}
		a.base = url.URL{Scheme: "http", Host: c.addr}
	}
	tlsSet := c.caFile != "" || c.certFile != "" || c.keyFile != "" || c.serverName != ""
	if tlsSet && a.base.Scheme != "https" {
		return nil, fmt.Errorf("--ca-file, --cert-file, --key-file and --server-name are for https:// addresses")
	}
	if a.base.Scheme == "https" {
		conf, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = conf
	}
	if c.username != "" {
		// Even on loopback: another local user may hold the port.
		if a.base.Scheme != "https" {
			return nil, fmt.Errorf("--username: the password goes only to https:// addresses (the API socket needs none)")
		}
		pass, err := c.password()
		if err != nil {
			return nil, err
		}
		a.user, a.pass = c.username, pass
	} else if c.passwordFile != "" {
		return nil, fmt.Errorf("--password-file needs --username")
	}
	a.http = &http.Client{Transport: tr, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return a, nil
}

// tlsConfig reads --ca-file, --cert-file and --key-file; the errors name
// the file and what is wrong with it.
func (c *clientFlags) tlsConfig() (*tls.Config, error) {
	return tlsfiles.Files{CA: c.caFile, Cert: c.certFile, Key: c.keyFile}.Client(c.serverName)
}

// password is the first line of --password-file, or $TCPSTATED_PASSWORD:
// never a flag's value, which ps shows to every user.
func (c *clientFlags) password() (string, error) {
	if c.passwordFile == "" {
		if p, ok := os.LookupEnv("TCPSTATED_PASSWORD"); ok {
			return p, nil
		}
		return "", fmt.Errorf("--username %s: give the password in --password-file or $TCPSTATED_PASSWORD", c.username)
	}
	f, err := os.Open(c.passwordFile)
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("--password-file %s: empty first line", c.passwordFile)
	}
	return line, nil
}

// getJSON asks the daemon for path and decodes the answer into v.
func (a *apiClient) getJSON(path string, q url.Values, v any) error {
	u := a.base
	u.Path, u.RawQuery = path, q.Encode()
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	if a.user != "" {
		req.SetBasicAuth(a.user, a.pass)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return a.unreachable(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return json.Unmarshal(body, v)
	case http.StatusUnauthorized:
		if a.user == "" {
			return fmt.Errorf("%s asks for credentials (401): give --username and --password-file", a.where)
		}
		return fmt.Errorf("%s refused the credentials of %s (401 Unauthorized)", a.where, a.user)
	}
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "HTTPS server") {
		return fmt.Errorf("%s speaks TLS: use https://%s", a.where, a.base.Host)
	}
	var e struct{ Error string }
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s: %s: %s", path, resp.Status, printable(e.Error))
	}
	return fmt.Errorf("%s: %s: %s", path, resp.Status, printable(strings.TrimSpace(string(body))))
}

// unreachable says why the daemon did not answer, and what to try.
func (a *apiClient) unreachable(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Errorf("%s: the daemon's certificate is not signed by a CA this client trusts: give it with --ca-file (%v)", a.where, err)
	case errors.As(err, &badName):
		return fmt.Errorf("%s: the daemon's certificate does not name this host: use --server-name (%v)", a.where, err)
	case errors.As(err, &recordErr):
		return fmt.Errorf("%s does not speak TLS: use http:// (%v)", a.where, err)
	case strings.Contains(err.Error(), "certificate required"), strings.Contains(err.Error(), "bad certificate"):
		return fmt.Errorf("%s wants a client certificate: give --cert-file and --key-file (%v)", a.where, err)
	case a.base.Host == "tcpstated" && errors.Is(err, syscall.ENOENT), a.base.Host == "tcpstated" && errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no daemon at %s (is `tcpstated run` running? it creates this socket; or give --addr): %v", a.where, err)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: permission denied (the socket's directory or the socket itself): %v", a.where, err)
	}
	return fmt.Errorf("cannot reach tcpstated at %s (is `tcpstated run` running? give --addr): %w", a.where, err)
}

// printable makes text from a daemon (or a process name it reports, which
// any user sets) safe for a terminal: control bytes and invalid UTF-8
// become escapes, so none can move the cursor or retitle root's window.
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			q := strconv.QuoteToGraphic(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
