package main

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// defaultWebConfigKey is the web configuration's key in the Secret when no
// DaemonSet names the file.
const defaultWebConfigKey = "web-config.yml"

// placeholder marks the values web-config-secret.yaml leaves to the user.
const placeholder = "REPLACE"

// A bcrypt hash as htpasswd -B and python's bcrypt write it.
var bcryptHash = regexp.MustCompile(`^\$2[abxy]?\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)

// webSecurity is what a web configuration secures, by the daemon's rule
// (internal/daemon/webconfig.go): TLS is a server certificate; auth is basic
// auth users, or client certificates that are required and verified.
type webSecurity struct {
	TLS, Auth, ClientCerts bool
	Users                  []string
}

// readWebConfig decodes a web configuration strictly into the exporter
// toolkit's own type, as the daemon does, so that the two cannot disagree.
func readWebConfig(b []byte) (*web.Config, webSecurity, error) {
	var c web.Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, webSecurity{}, err
	}
	t := &c.TLSConfig
	sec := webSecurity{TLS: t.TLSCertPath != "" || t.TLSCert != ""}
	sec.ClientCerts = sec.TLS && t.ClientAuth == "RequireAndVerifyClientCert"
	sec.Auth = len(c.Users) > 0 || sec.ClientCerts
	for u := range c.Users {
		sec.Users = append(sec.Users, u)
	}
	slices.Sort(sec.Users)
	return &c, sec, nil
}

// secretFiles is the Secret as its volume shows it: key to content.
func secretFiles(s *corev1.Secret) map[string][]byte {
	files := map[string][]byte{}
	for k, v := range s.Data {
		files[k] = v
	}
	for k, v := range s.StringData { // the API server lets stringData win
		files[k] = []byte(v)
	}
	return files
}

// webSecretConfig finds and reads the web configuration in a Secret.
func webSecretConfig(s *corev1.Secret, d daemonArgs) (string, *web.Config, webSecurity, error) {
	key := defaultWebConfigKey
	if d.webConfig != "" {
		key = path.Base(d.webConfig)
	}
	b, ok := secretFiles(s)[key]
	if !ok {
		return key, nil, webSecurity{}, fmt.Errorf("has no key %s (the --web.config.file the DaemonSet reads)", key)
	}
	c, sec, err := readWebConfig(b)
	if err != nil {
		return key, nil, sec, fmt.Errorf("%s: %v", key, err)
	}
	return key, c, sec, nil
}

// checkWebSecret checks a web configuration Secret: the one the DaemonSet
// mounts, holding a web config that gives TLS and authentication, whose
// files are keys of the same Secret. Unless it is the template (values
// left as REPLACE...), the exporter toolkit then loads it as the daemon
// will: the certificate with its key, and the password hashes.
func checkWebSecret(s *corev1.Secret, ds *appsv1.DaemonSet, d daemonArgs) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if s.Namespace != ds.Namespace {
		bad("metadata.namespace is %q, not the DaemonSet's %q", s.Namespace, ds.Namespace)
	}
	if want := webSecretName(ds, d); want == "" {
		bad("the DaemonSet mounts no Secret as its --web.config.file directory")
	} else if s.Name != want {
		bad("the DaemonSet mounts the Secret %q, not this one", want)
	}
	if s.Type != "" && s.Type != corev1.SecretTypeOpaque && s.Type != corev1.SecretTypeTLS {
		bad("type %s: want Opaque (or kubernetes.io/tls)", s.Type)
	}

	key, c, sec, err := webSecretConfig(s, d)
	if err != nil {
		return append(errs, err)
	}
	files := secretFiles(s)
	t := &c.TLSConfig
	if !sec.TLS {
		bad("%s has no tls_server_config cert_file: the listener reaches beyond loopback and needs TLS", key)
	}
	if !sec.Auth {
		bad("%s has neither basic_auth_users nor client_auth_type RequireAndVerifyClientCert: the listener needs authentication", key)
	}
	// Relative names are relative to the web config's directory, the
	// Secret's mount: each must be a key of this Secret.
	for _, f := range []struct{ field, name string }{
		{"cert_file", t.TLSCertPath}, {"key_file", t.TLSKeyPath}, {"client_ca_file", t.ClientCAs},
	} {
		if f.name == "" {
			continue
		}
		name := f.name
		if d.webConfig != "" && path.IsAbs(name) && path.Dir(path.Clean(name)) == path.Dir(d.webConfig) {
			name = path.Base(name)
		}
		if strings.Contains(name, "/") {
			bad("%s %s %s is not a file of this Secret: name a key relative to the web config (tls.crt)", key, f.field, f.name)
		} else if _, ok := files[name]; !ok {
			bad("%s %s %s: the Secret has no such key", key, f.field, f.name)
		}
	}
	if (t.TLSCertPath != "") != (t.TLSKeyPath != "") && t.TLSCert == "" && t.TLSKey == "" {
		bad("%s: cert_file and key_file go together", key)
	}

	template := false
	for k, v := range files {
		if strings.HasPrefix(strings.TrimSpace(string(v)), placeholder) {
			template = true
			if k == key {
				bad("%s itself is a placeholder", key)
			}
		}
	}
	for _, u := range sec.Users {
		h := string(c.Users[u])
		switch {
		case strings.HasPrefix(h, placeholder):
			template = true
		case !bcryptHash.MatchString(h):
			bad("%s basic_auth_users %s: not a bcrypt hash (htpasswd -nBC 10 \"\" | tr -d ':\\n'); never the password itself", key, u)
		}
	}
	if template || len(errs) > 0 {
		return errs
	}
	if err := loadWebConfig(files, key); err != nil {
		bad("%v", err)
	}
	return errs
}

// loadWebConfig writes the Secret's files to a directory, as its volume
// would, and has the exporter toolkit validate the web config there: the
// certificate and key load and match, the hashes are bcrypt.
func loadWebConfig(files map[string][]byte, key string) error {
	dir, err := os.MkdirTemp("", "tcpstated-web-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for k, v := range files {
		if strings.ContainsAny(k, `/\`) || k == ".." || k == "." {
			return fmt.Errorf("key %q is not a file name", k)
		}
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			return err
		}
	}
	if err := web.Validate(filepath.Join(dir, key)); err != nil {
		return errors.New(strings.ReplaceAll(fmt.Sprintf("%s does not load: %v", key, err), dir+"/", ""))
	}
	return nil
}
