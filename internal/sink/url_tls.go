package sink

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// defaultSyslogTLSPort is RFC 5425's port for syslog over TLS.
const defaultSyslogTLSPort = "6514"

// tlsOptionNames are the query keys tls:// and syslog+tls:// accept. None
// turns certificate verification off, on purpose.
const tlsOptionNames = "ca, cert, key, server_name"

// tlsParams are a TLS sink's options as its URL gives them.
type tlsParams struct {
	ca, cert, key string // cleaned absolute paths of PEM files; "" if not given
	serverName    string // the name to verify; "" means the URL's host
}

// takesQuery: only the TLS schemes have options; the others refuse a
// query string rather than ignore it.
func takesQuery(scheme string) bool { return scheme == "tls" || scheme == "syslog+tls" }

// parseTLSParams validates the query string of a TLS sink URL. Values are
// percent-decoded as paths: '+' stays a plus.
func parseTLSParams(u *url.URL) (tlsParams, error) {
	var p tlsParams
	if u.RawQuery == "" {
		if u.ForceQuery {
			return p, errors.New("empty query string after '?'")
		}
		return p, nil
	}
	seen := make(map[string]bool)
	for _, part := range strings.Split(u.RawQuery, "&") {
		if part == "" {
			return p, errors.New("empty option in the query string (a stray '&')")
		}
		if strings.Contains(part, ";") {
			return p, errors.New("';' in the query string: options are separated by '&' (write a ';' in a path as %3B)")
		}
		rawKey, rawVal, _ := strings.Cut(part, "=")
		key, err := url.PathUnescape(rawKey)
		if err != nil {
			return p, fmt.Errorf("option name %s: %v", shortQuote(rawKey), err)
		}
		switch key {
		case "ca", "cert", "key", "server_name":
		default:
			return p, fmt.Errorf("unknown option %s; accepted: %s", shortQuote(key), tlsOptionNames)
		}
		if seen[key] {
			return p, fmt.Errorf("option %s given twice", key)
		}
		seen[key] = true
		val, err := url.PathUnescape(rawVal)
		if err != nil {
			return p, fmt.Errorf("option %s: %v", key, err)
		}
		if val == "" {
			return p, fmt.Errorf("option %s has no value", key)
		}
		if key == "server_name" {
			if err := checkHost(val); err != nil {
				return p, fmt.Errorf("server_name: %v", err)
			}
			p.serverName = val
			continue
		}
		path, err := checkPath(val, 0)
		if err != nil {
			return p, fmt.Errorf("%s: %v", key, err)
		}
		switch key {
		case "ca":
			p.ca = path
		case "cert":
			p.cert = path
		case "key":
			p.key = path
		}
	}
	switch {
	case p.cert != "" && p.key == "":
		return p, errors.New("cert given without key: a client certificate needs both cert and key")
	case p.key != "" && p.cert == "":
		return p, errors.New("key given without cert: a client certificate needs both cert and key")
	}
	return p, nil
}

// shortQuote quotes a piece of a hostile URL for an error, cut short.
func shortQuote(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.QuoteToASCII(s[:max]) + "..."
	}
	return strconv.QuoteToASCII(s)
}
