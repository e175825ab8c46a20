package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A real Prometheus (Debian's package) scrapes the real daemon while real
// peer processes make connections; the test asks Prometheus, through its
// HTTP API, what it stored. This checks what a unit test cannot: that
// Prometheus accepts every scrape (up == 1, hostile comm values included)
// and reads the histograms as histograms.

// Prometheus is a prometheus server run by a test.
type Prometheus struct {
	t    *testing.T
	cmd  *exec.Cmd
	Addr string // host:port of its web API
	log  string // path of its stderr
	done chan struct{}
}

// prometheusBinary is $PROMETHEUS_BIN or prometheus on $PATH; without one
// the test is skipped, except in CI (but always in the kernel-test guest).
func prometheusBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("PROMETHEUS_BIN"); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("TCPSTATED_IN_GUEST") == "1" {
			// The kernel-test initramfs has no prometheus; the scrape
			// does not depend on the kernel and is tested on the host.
			t.Skip("prometheus is not in the kernel-test guest")
		}
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus not installed (apt-get install -y prometheus); CI=true: not skipping")
		}
		t.Skip("prometheus not installed (apt-get install -y prometheus)")
	}
	return bin
}

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartPrometheus runs prometheus on its own loopback port (never :9090,
// where a packaged service may run) with one job, "tcpstated", scraping
// target every second, and waits until it is ready.
func StartPrometheus(t *testing.T, target string) *Prometheus {
	t.Helper()
	return StartPrometheusWith(t, fmt.Sprintf(`
  - job_name: tcpstated
    static_configs:
      - targets: [%q]
`, target))
}

// StartPrometheusWith runs prometheus with these scrape_configs entries.
func StartPrometheusWith(t *testing.T, scrapeConfigs string) *Prometheus {
	t.Helper()
	bin := prometheusBinary(t)
	dir := t.TempDir() // before the process cleanup: removed after it stops
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:`+scrapeConfigs), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Prometheus{t: t, Addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), log: filepath.Join(dir, "prometheus.log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.Addr,
		"--storage.tsdb.retention.time=1h",
		"--log.level=info",
	)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Stop)

	c := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get("http://" + p.Addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("prometheus exited before it was ready: %v\n%s", p.cmd.ProcessState, p.Log())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s\n%s", p.Log())
		}
	}
}

// Log is what prometheus wrote so far.
func (p *Prometheus) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Stop ends prometheus: SIGTERM, then SIGKILL after 10s.
func (p *Prometheus) Stop() {
	if p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Sample is one element of an instant vector from /api/v1/query.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant PromQL query.
func (p *Prometheus) Query(expr string) ([]Sample, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.Addr + "/api/v1/query?" + url.Values{"query": {expr}}.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorType string `json:"errorType"`
		Data      struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %s: %s: %w", expr, resp.Status, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s: %s", expr, r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", expr, r.Data.ResultType)
	}
	var out []Sample
	for _, e := range r.Data.Result {
		s, _ := e.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", expr, e.Value[1], err)
		}
		out = append(out, Sample{Metric: e.Metric, Value: v})
	}
	return out, nil
}

// Scalar runs a query that yields at most one sample; none reads as
// (0, false).
func (p *Prometheus) Scalar(expr string) (float64, bool, error) {
	res, err := p.Query(expr)
	if err != nil || len(res) == 0 {
		return 0, false, err
	}
	if len(res) > 1 {
		return 0, false, fmt.Errorf("query %s: %d samples, want one", expr, len(res))
	}
	return res[0].Value, true, nil
}

// WaitFor queries until cond holds or fails the test after timeout.
func (p *Prometheus) WaitFor(expr string, timeout time.Duration, cond func(v float64, ok bool) bool) float64 {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, ok, err := p.Scalar(expr)
		if err != nil {
			p.t.Fatalf("%v\nprometheus log:\n%s", err, p.Log())
		}
		if cond(v, ok) {
			return v
		}
		if time.Now().After(deadline) {
			lost, _, _ := p.Scalar(`sum(tcpstated_ringbuf_lost_total)`)
			p.t.Fatalf("after %v: %s = %v (present %v); records lost by the ring buffer: %v\ntargets: %s\nprometheus log:\n%s",
				timeout, expr, v, ok, lost, p.targets(), p.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// targets is /api/v1/targets, for failure messages (it holds lastError).
func (p *Prometheus) targets() string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.Addr + "/api/v1/targets")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var b strings.Builder
	for sc.Scan() {
		b.WriteString(sc.Text())
	}
	return b.String()
}

// hostileComm is the name of a peer executable, hence its comm: a quote,
// a backslash, a line feed, braces, an equals sign and a byte that is not
// UTF-8, everything that could break a label value (10 bytes < 16).
const hostileComm = "h\"\\\n}{x=\"\xff"

// hostileLabel is how the daemon shows it: the invalid byte as U+FFFD.
const hostileLabel = "h\"\\\n}{x=\"\uFFFD"

// StartNamedPeer starts a peer whose executable, and so comm, is name.
func StartNamedPeer(t *testing.T, name string) *Peer {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	p := startPeer(t, exec.Command(link, "-test.run=^$"))
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid))
	if err != nil || strings.TrimSuffix(string(comm), "\n") != name {
		t.Fatalf("peer comm %q (%v), want %q", comm, err, name)
	}
	return p
}

func TestPrometheusScrapesDaemon(t *testing.T) {
	prometheusBinary(t) // skip before starting anything
	d := StartDaemon(t)
	prom := StartPrometheus(t, d.API)
	const job = `job="tcpstated"`

	// A scrape has happened and succeeded.
	prom.WaitFor(`up{`+job+`}`, 30*time.Second, func(v float64, ok bool) bool { return ok && v == 1 })
	base, _, err := prom.Scalar(`sum(tcpstated_transitions_total{old="ESTABLISHED",new="FIN_WAIT1",` + job + `})`)
	if err != nil {
		t.Fatal(err)
	}

	// Peers: the client closes first, N times; a hostile-named client once.
	const n = 5
	comm := filepath.Base(os.Args[0]) // e2e.test: the peers are this binary
	if len(comm) > 15 {
		comm = comm[:15]
	}
	server, client := StartPeer(t), StartPeer(t)
	hostile := StartNamedPeer(t, hostileComm)
	port := server.Port("listen tcp4 127.0.0.1:0")
	client.Port("connect tcp4 127.0.0.1:%d %d", port, n)
	server.Do("accept %d", n)
	hostile.Port("connect tcp4 127.0.0.1:%d", port)
	server.Do("accept")
	client.Do("close")
	hostile.Do("close")
	server.Do("readeof") // the hostile peer's connection, accepted last
	server.Do("close")
	server.Do("closelistener")

	const wait = 30 * time.Second
	got := prom.WaitFor(`sum(tcpstated_transitions_total{old="ESTABLISHED",new="FIN_WAIT1",`+job+`})`, wait,
		func(v float64, ok bool) bool { return ok && v >= base+n+1 })
	t.Logf("ESTABLISHED -> FIN_WAIT1: %v before, %v after", base, got)

	synSent := fmt.Sprintf(`tcpstated_state_duration_seconds_count{state="SYN_SENT",comm=%q,%s}`, comm, job)
	prom.WaitFor(synSent, wait, func(v float64, ok bool) bool { return ok && v >= n })

	// Prometheus reads the buckets as a histogram.
	q := prom.WaitFor(fmt.Sprintf(`histogram_quantile(0.99, tcpstated_state_duration_seconds_bucket{state="SYN_SENT",comm=%q,%s})`, comm, job),
		wait, func(v float64, ok bool) bool { return ok })
	if math.IsNaN(q) || math.IsInf(q, 0) || q <= 0 || q > 5 {
		t.Errorf("p99 of SYN_SENT on loopback: %v s", q)
	}
	t.Logf("p99 SYN_SENT for %s: %v s", comm, q)

	// The hostile comm arrived intact: one series, exactly that label.
	// (?s): the value holds a line feed, which "." does not match otherwise.
	res, err := prom.Query(`tcpstated_comm_transitions_total{comm=~"(?s)h.*",` + job + `}`)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, s := range res {
		if s.Metric["comm"] == hostileLabel && s.Value > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("no tcpstated_comm_transitions_total{comm=%q} > 0; got %+v", hostileLabel, res)
	}
	// PromQL refuses a raw U+FFFD in a string: QuoteToASCII writes \ufffd.
	prom.WaitFor(fmt.Sprintf(`tcpstated_state_duration_seconds_count{state="SYN_SENT",comm=%s,%s}`, strconv.QuoteToASCII(hostileLabel), job),
		wait, func(v float64, ok bool) bool { return ok && v >= 1 })

	// Every feature this kernel supports runs, and Prometheus sees it.
	for _, f := range allFeatures {
		want := 0.0
		if featureWanted(t, f, "") == "on" {
			want = 1
		}
		prom.WaitFor(fmt.Sprintf(`tcpstated_feature_enabled{feature=%q,%s}`, f, job), wait,
			func(v float64, ok bool) bool { return ok && v == want })
	}
	// TIME_WAIT shows under the clients: each one the kernel still holds
	// (it may end one early on its own; the hostile peer's is not theirs).
	// Counted by peer port only, and again at every look: a socket of an
	// earlier test may have this port as its own.
	t.Cleanup(func() {
		if t.Failed() {
			logPortView(t, d, port)
		}
	})
	prom.WaitFor(fmt.Sprintf(`tcpstated_sockets{state="TIME_WAIT",comm=%q,%s}`, comm, job), wait,
		func(v float64, ok bool) bool {
			held := len(ssRows(t, "time-wait", fmt.Sprintf("( dport = :%d )", port))) - 1
			return ok && v >= float64(min(held, n)) && held >= n-1
		})

	// Build info names this kernel.
	var uts syscall.Utsname
	syscall.Uname(&uts)
	var rel []byte
	for _, c := range uts.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	if v, ok, err := prom.Scalar(fmt.Sprintf(`tcpstated_build_info{kernel=%q,%s}`, rel, job)); err != nil || !ok || v != 1 {
		t.Errorf("tcpstated_build_info{kernel=%q}: %v %v %v", rel, v, ok, err)
	}

	// Every scrape since the start succeeded; nothing was undecodable.
	// (Loss is not asserted: other tests may be flooding this host.)
	for expr, want := range map[string]float64{
		`tcpstated_decode_errors_total{` + job + `}`: 0,
		`min_over_time(up{` + job + `}[5m])`:         1,
	} {
		if v, ok, err := prom.Scalar(expr); err != nil || !ok || v != want {
			t.Errorf("%s = %v (present %v, %v), want %v", expr, v, ok, err, want)
		}
	}
	if v, _, _ := prom.Scalar(`tcpstated_ringbuf_lost_total{` + job + `}`); v > 0 {
		t.Logf("ring buffer lost %v records (a busy host?)", v)
	}
	if v, _, _ := prom.Scalar(`max_over_time(scrape_duration_seconds{` + job + `}[5m])`); v > 0 {
		t.Logf("slowest scrape: %.1f ms", v*1e3)
	}
	if v, _, _ := prom.Scalar(`scrape_samples_scraped{` + job + `}`); v < 100 {
		t.Errorf("scrape_samples_scraped = %v: too few", v)
	}
}

// logPortView logs, for a failure message, what the kernel, the daemon's
// API and its event stream each say of the sockets on port.
func logPortView(t *testing.T, d *Daemon, port int) {
	t.Helper()
	out, _ := exec.Command("ss", "-Htnae", fmt.Sprintf("( sport = :%d or dport = :%d )", port, port)).CombinedOutput()
	t.Logf("ss on port %d:\n%s", port, out)
	for _, s := range d.Sockets("", port) {
		t.Logf("api: %+v", s)
	}
	for _, e := range d.ReadEvents() {
		if e.Sport == port || e.Dport == port {
			t.Logf("event: %v", e)
		}
	}
}
