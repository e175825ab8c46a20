package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tcpstated/tcpstated/internal/testkit"
)

// Who may read what: the network listener needs TLS and authentication
// beyond loopback, the API socket shows each local user their own.

const (
	testUser     = "ops"
	testPassword = "correct horse battery staple"
)

// secured is a daemon's TLS material and web configuration.
type secured struct {
	PKI          *testkit.PKI
	Dir          string
	CA           string // the CA certificate's path
	WebConfig    string
	PasswordFile string
	WrongFile    string
}

// newSecured writes a web configuration with TLS and basic auth; with
// clientCerts, clients must also present a certificate the CA signed.
func newSecured(t *testing.T, clientCerts bool) *secured {
	t.Helper()
	dir := t.TempDir()
	s := &secured{PKI: testkit.NewPKI(t, dir)}
	s.CA, s.Dir = s.PKI.CA.Path, dir
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// Relative paths: the toolkit reads them from the file's directory.
	conf := "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	if clientCerts {
		conf += "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
	}
	conf += fmt.Sprintf("basic_auth_users:\n  %s: %q\n", testUser, hash)
	s.WebConfig = writeFile(t, dir, "web-config.yml", conf)
	s.PasswordFile = writeFile(t, dir, "password", testPassword+"\n")
	s.WrongFile = writeFile(t, dir, "wrong", "not the password\n")
	return s
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runDaemonRefused runs `tcpstated run` expecting it to refuse its flags.
func runDaemonRefused(t *testing.T, flags ...string) string {
	t.Helper()
	args := append([]string{"run", "--api-socket", "off", "--sink", "file:" + filepath.Join(t.TempDir(), "ev")}, flags...)
	cmd := exec.Command(daemonBinary(t), args...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("tcpstated %v did not refuse to start:\n%s", flags, out)
	}
	if err == nil {
		t.Fatalf("tcpstated %v started and exited 0; want a refusal:\n%s", flags, out)
	}
	return string(out)
}

func TestNetworkListenerNeedsTLSAndAuth(t *testing.T) {
	sec := newSecured(t, false)
	tlsOnly := writeFile(t, sec.Dir, "tls-only.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
	authOnly := writeFile(t, sec.Dir, "auth-only.yml", "basic_auth_users:\n  ops: '$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi'\n")
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "--listen 0.0.0.0:0 reaches beyond loopback without TLS and authentication"},
		{[]string{"--listen", "[::]:0"}, "reaches beyond loopback without TLS and authentication"},
		{[]string{"--listen", "127.0.0.1:0", "--listen-api"}, "--listen-api puts the socket table on 127.0.0.1:0"},
		{[]string{"--listen", "0.0.0.0:0", "--web.config.file", tlsOnly}, "without authentication"},
		{[]string{"--listen", "0.0.0.0:0", "--web.config.file", authOnly}, "without TLS"},
	} {
		out := runDaemonRefused(t, tc.flags...)
		for _, w := range []string{tc.want, "--web.config.file", "--allow-unauthenticated-listen", "docs/deploy.md"} {
			if !strings.Contains(out, w) {
				t.Errorf("%v: the refusal does not say %q:\n%s", tc.flags, w, out)
			}
		}
	}
	if out := runDaemonRefused(t, "--listen", "127.0.0.1:0", "--web.config.file", filepath.Join(sec.Dir, "missing.yml")); !strings.Contains(out, "missing.yml") {
		t.Errorf("a missing web config is not named:\n%s", out)
	}

	// Said in so many words, it serves, and warns.
	d := StartDaemon(t, "--listen", "0.0.0.0:0", "--allow-unauthenticated-listen")
	_, port, _ := strings.Cut(d.API, "]:")
	if port == "" {
		_, port, _ = strings.Cut(d.API, ":")
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("--allow-unauthenticated-listen: /metrics %s", resp.Status)
	}
	if !strings.Contains(d.stderr.String(), "to anyone who can connect") {
		t.Errorf("no warning for the unauthenticated listener:\n%s", d.stderr.String())
	}
}

// The clients reach a TLS daemon that verifies passwords and client
// certificates, and say what is wrong when they cannot.
func TestClientsReachTLSDaemon(t *testing.T) {
	sec := newSecured(t, true)
	d := StartDaemon(t, "--listen", "127.0.0.1:0", "--listen-api", "--web.config.file", sec.WebConfig)
	owner := StartPeer(t)
	port := owner.Port("listen tcp4 127.0.0.1:0")
	addr := "https://" + d.API
	creds := []string{"--addr", addr, "--ca-file", sec.CA, "--cert-file", sec.PKI.Client.CertPath, "--key-file", sec.PKI.Client.KeyPath,
		"--username", testUser, "--password-file", sec.PasswordFile}

	eventually(t, "the listener in the table over TLS", 10*time.Second, func() error {
		out, errOut, code := run(t, append([]string{"sockets", "--port", fmt.Sprint(port)}, creds...)...)
		if code != 0 || !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d", port)) || !strings.Contains(out, fmt.Sprint(owner.Pid)) {
			return fmt.Errorf("exit %d:\n%s%s", code, out, errOut)
		}
		return nil
	})
	if out, errOut, code := run(t, append([]string{"top", "-n", "1"}, creds...)...); code != 0 || !strings.Contains(out, "tcpstated top") {
		t.Errorf("top over TLS: exit %d\n%s%s", code, out, errOut)
	}

	// Each missing or wrong credential fails with its own message.
	for _, tc := range []struct {
		what string
		args []string
		want string
	}{
		{"wrong password", []string{"--addr", addr, "--ca-file", sec.CA, "--cert-file", sec.PKI.Client.CertPath, "--key-file", sec.PKI.Client.KeyPath, "--username", testUser, "--password-file", sec.WrongFile}, "refused the credentials of ops"},
		{"no password", []string{"--addr", addr, "--ca-file", sec.CA, "--cert-file", sec.PKI.Client.CertPath, "--key-file", sec.PKI.Client.KeyPath}, "asks for credentials"},
		{"no client certificate", []string{"--addr", addr, "--ca-file", sec.CA, "--username", testUser, "--password-file", sec.PasswordFile}, "wants a client certificate"},
		{"no CA", []string{"--addr", addr, "--cert-file", sec.PKI.Client.CertPath, "--key-file", sec.PKI.Client.KeyPath, "--username", testUser, "--password-file", sec.PasswordFile}, "not signed by a CA this client trusts"},
		{"wrong name", append(append([]string{}, creds...), "--server-name", "elsewhere.example"), "does not name this host"},
		{"plain HTTP", []string{"--addr", d.API}, "speaks TLS"},
		{"password to plain HTTP", []string{"--addr", "http://" + d.API, "--username", testUser, "--password-file", sec.PasswordFile}, "goes only to https://"},
		{"password on the command line", []string{"--addr", addr, "--username", testUser, "--password", testPassword}, "flag provided but not defined: -password"},
	} {
		out, errOut, code := run(t, append([]string{"sockets"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, want a failure saying %q:\n%s%s", tc.what, code, tc.want, out, errOut)
		}
	}
	// The password from the environment instead of a file.
	cmd := exec.Command(daemonBinary(t), "sockets", "--addr", addr, "--ca-file", sec.CA, "--cert-file", sec.PKI.Client.CertPath, "--key-file", sec.PKI.Client.KeyPath, "--username", testUser, "--limit", "1")
	cmd.Env = append(os.Environ(), "TCPSTATED_PASSWORD="+testPassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("password from $TCPSTATED_PASSWORD: %v\n%s", err, out)
	}

	// Any HTTP client: the certificate and the password are both needed.
	c := tlsClient(t, sec)
	for _, tc := range []struct {
		auth bool
		want int
	}{{true, http.StatusOK}, {false, http.StatusUnauthorized}} {
		req, _ := http.NewRequest(http.MethodGet, addr+"/metrics", nil)
		if tc.auth {
			req.SetBasicAuth(testUser, testPassword)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET /metrics with basic auth %v: %s, want %d", tc.auth, resp.Status, tc.want)
		}
	}

	// The probe's way in: the API socket, no credentials, nothing on the network.
	if out, errOut, code := run(t, "health", "--addr", d.Socket); code != 0 || !(strings.HasPrefix(out, "ok:") || strings.HasPrefix(out, "degraded:")) {
		t.Errorf("health over the API socket: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := run(t, "health", "--addr", d.API); code != 1 {
		t.Errorf("health over plain HTTP to the TLS listener: exit %d, want 1\n%s", code, errOut)
	}
}

// A real Prometheus scrapes the TLS daemon with basic auth and a client
// certificate; each missing piece makes its target fail.
func TestPrometheusScrapesOverTLS(t *testing.T) {
	prometheusBinary(t)
	sec := newSecured(t, true)
	d := StartDaemon(t, "--listen", "127.0.0.1:0", "--web.config.file", sec.WebConfig)
	job := func(name, scheme, cert, password string) string {
		s := fmt.Sprintf("\n  - job_name: %s\n    scheme: %s\n    static_configs:\n      - targets: [%q]\n", name, scheme, d.API)
		if scheme == "https" {
			s += fmt.Sprintf("    tls_config:\n      ca_file: %s\n", sec.CA)
			if cert != "" {
				s += fmt.Sprintf("      cert_file: %s\n      key_file: %s\n", sec.PKI.Client.CertPath, sec.PKI.Client.KeyPath)
			}
		}
		if password != "" {
			s += fmt.Sprintf("    basic_auth:\n      username: %s\n      password_file: %s\n", testUser, password)
		}
		return s
	}
	prom := StartPrometheusWith(t,
		job("secure", "https", "client", sec.PasswordFile)+
			job("wrong_password", "https", "client", sec.WrongFile)+
			job("no_client_cert", "https", "", sec.PasswordFile)+
			job("plain_http", "http", "", sec.PasswordFile))
	prom.WaitFor(`up{job="secure"}`, 30*time.Second, func(v float64, ok bool) bool { return ok && v == 1 })
	prom.WaitFor(`tcpstated_build_info{job="secure"}`, 30*time.Second, func(v float64, ok bool) bool { return ok && v == 1 })
	for _, j := range []string{"wrong_password", "no_client_cert", "plain_http"} {
		// Every scrape so far failed, not just the last.
		prom.WaitFor(fmt.Sprintf(`count_over_time(up{job=%q}[1h])`, j), 30*time.Second, func(v float64, ok bool) bool { return ok && v >= 3 })
		if v, ok, err := prom.Scalar(fmt.Sprintf(`max_over_time(up{job=%q}[1h])`, j)); err != nil || !ok || v != 0 {
			t.Errorf("job %s: max up %v (present %v, %v), want 0: the scrape must fail\ntargets: %s", j, v, ok, err, prom.targets())
		}
	}
}

// A user without privileges learns no more than `ss -p` tells them: their
// own processes' sockets, and no metrics; the API group sees everything.
func TestUnprivilegedUserSeesOwnSockets(t *testing.T) {
	const group = 4242
	d := StartDaemonWith(t, func(cmd *exec.Cmd, dir string) { openDir(t, dir) }, "--api-group", fmt.Sprint(group))
	rootPeer := StartPeer(t)
	rootPort := rootPeer.Port("listen tcp4 127.0.0.1:0")
	user := startPeerAs(t, 65534)
	userPort := user.Port("listen tcp4 127.0.0.1:0")
	user.Port("connect tcp4 127.0.0.1:%d", rootPort)
	rootPeer.Do("accept")

	asUser := func(groups []uint32, args ...string) (string, string, int) {
		var out, errb strings.Builder
		cmd := exec.Command(daemonBinary(t), args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: groups}}
		err := cmd.Run()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		return out.String(), errb.String(), code
	}
	// rowsOf counts a table's rows by the PID column, after the header
	// that starts with head: a pid's digits may also be in a port.
	rowsOf := func(out, head string, col int) map[string]int {
		m := map[string]int{}
		in := false
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) > 0 && f[0] == head:
				in = true
			case in && len(f) > col:
				m[f[col]]++
			}
		}
		return m
	}
	socketPids := func(out string) map[string]int { return rowsOf(out, "STATE", 4) }
	userPid, rootPid := fmt.Sprint(user.Pid), fmt.Sprint(rootPeer.Pid)

	// The user's two sockets (listener and client side), and nothing of root's.
	eventually(t, "the user's own sockets", 10*time.Second, func() error {
		out, errOut, code := asUser(nil, "sockets", "--addr", d.Socket)
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		pids := socketPids(out)
		if got := pids[userPid]; got != 2 {
			return fmt.Errorf("%d rows of the user's process %d, want 2:\n%s", got, user.Pid, out)
		}
		if len(pids) != 1 {
			return fmt.Errorf("rows of other processes than %d (%v):\n%s", user.Pid, pids, out)
		}
		if !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d", userPort)) || !strings.Contains(errOut, "only your own processes") {
			return fmt.Errorf("listener %d missing or no notice:\n%s%s", userPort, out, errOut)
		}
		return nil
	})
	if out, _, _ := asUser(nil, "sockets", "--addr", d.Socket, "--pid", rootPid); len(socketPids(out)) != 0 {
		t.Errorf("asking for root's pid shows root's sockets:\n%s", out)
	}
	if out, errOut, code := asUser(nil, "top", "--addr", d.Socket, "-n", "1"); code != 0 || !strings.Contains(out, "your processes only") || rowsOf(out, "PID", 0)[rootPid] != 0 {
		t.Errorf("top as another user: exit %d\n%s%s", code, out, errOut)
	}
	// The metrics and the peers name every process's: not for this user.
	// Health is, without the operators' details (sinks, tables, namespaces).
	for path, want := range map[string]int{"/metrics": http.StatusForbidden, "/api/v1/peers": http.StatusForbidden, "/healthz": http.StatusOK} {
		code, body := getAs(t, d.Socket, path, 65534, nil)
		if code != want {
			t.Errorf("%s as uid 65534: %d, want %d: %s", path, code, want, body)
		}
		if path == "/healthz" && (!strings.Contains(body, `"status"`) || strings.Contains(body, "features") || strings.Contains(body, "sockets_max")) {
			t.Errorf("/healthz as uid 65534 says more than the status:\n%s", body)
		}
	}

	// A member of the API group, and root, see root's sockets too.
	for who, groups := range map[string][]uint32{"group member": {group}} {
		out, errOut, code := asUser(groups, "sockets", "--addr", d.Socket, "--port", fmt.Sprint(rootPort))
		if code != 0 || socketPids(out)[rootPid] == 0 {
			t.Errorf("%s: exit %d, root's listener %d missing:\n%s%s", who, code, rootPort, out, errOut)
		}
		for _, path := range []string{"/metrics", "/api/v1/peers"} {
			if code, body := getAs(t, d.Socket, path, 65534, groups); code != http.StatusOK {
				t.Errorf("%s: %s %d: %s", who, path, code, body)
			}
		}
	}
	if out, errOut, code := run(t, "sockets", "--addr", d.Socket, "--port", fmt.Sprint(rootPort)); code != 0 || socketPids(out)[rootPid] == 0 || socketPids(out)[userPid] == 0 {
		t.Errorf("root: exit %d, want both ends of the connection:\n%s%s", code, out, errOut)
	}
}

// getAs fetches path over the API socket from a process with these
// credentials: the kernel, not the request, tells the daemon who asks.
func getAs(t *testing.T, sock, path string, uid uint32, groups []uint32) (int, string) {
	t.Helper()
	cmd := exec.Command(peerBinary(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), getEnv+"="+sock+" "+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: groups}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GET %s as %d: %v", path, uid, err)
	}
	first, rest, _ := strings.Cut(string(out), "\n")
	code, err := strconv.Atoi(first)
	if err != nil {
		t.Fatalf("GET %s as %d: %q", path, uid, out)
	}
	return code, rest
}

// getEnv makes the test binary GET one path over a unix socket, print the
// status code on a line and then the body, and exit.
const getEnv = "TCPSTATED_TEST_GET"

func runGet(arg string) int {
	sock, path, _ := strings.Cut(arg, " ")
	resp, err := socketClient(sock).Get("http://tcpstated" + path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	fmt.Printf("%d\n%s", resp.StatusCode, b)
	return 0
}

// peerBinary is a copy of the test binary other users may run: the go
// tool builds it in a directory only root can enter.
func peerBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tcpstated-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "peer")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// startPeerAs starts a peer process running as uid (and gid uid).
func startPeerAs(t *testing.T, uid uint32) *Peer {
	t.Helper()
	cmd := exec.Command(peerBinary(t), "-test.run=^$")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}, Pdeathsig: syscall.SIGKILL}
	return startPeer(t, cmd)
}

// tlsClient trusts the test CA and presents the client certificate.
func tlsClient(t *testing.T, sec *secured) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	b, err := os.ReadFile(sec.CA)
	if err != nil || !pool.AppendCertsFromPEM(b) {
		t.Fatalf("CA %s: %v", sec.CA, err)
	}
	cert, err := tls.LoadX509KeyPair(sec.PKI.Client.CertPath, sec.PKI.Client.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}
}
