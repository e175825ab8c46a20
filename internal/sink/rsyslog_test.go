package sink

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// These tests talk to a real rsyslogd (Debian package rsyslog), started
// here with a private config: loopback-only inputs, no system socket, and
// everything received written to files in the test's temp directory.

// rsyslogd finds the daemon, or skips the test; under CI=true a missing
// rsyslogd fails instead, so a provisioning gap cannot pass as green.
func rsyslogdPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("rsyslogd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/rsyslogd"); err == nil {
		return "/usr/sbin/rsyslogd"
	}
	const msg = "rsyslogd not found; install the Debian package rsyslog"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

type rsyslogd struct {
	tcpAddr, udpAddr, socket string
	tlsAddr                  string // with a rsyslogTLS input only
	parsed, raw              string // output files
	stop                     func()
}

// capture is one message as rsyslog parsed it.
type capture struct {
	severity, facility, hostname, appName, procID, input, msg string
}

const captureTemplate = `%syslogseverity%|%syslogfacility%|%hostname%|%app-name%|%procid%|%inputname%|%msg%\n`

func startRsyslogd(t *testing.T) *rsyslogd {
	return startRsyslogdAt(t, freeAddr(t, "tcp"))
}

// startRsyslogdAt starts rsyslogd with its TCP input on tcpAddr; it is
// stopped when the test ends, or earlier by its stop func.
func startRsyslogdAt(t *testing.T, tcpAddr string) *rsyslogd {
	return startRsyslogdWith(t, tcpAddr, nil)
}

// startRsyslogdWith is startRsyslogdAt with an RFC 5425 input too, when
// tlsIn is not nil.
func startRsyslogdWith(t *testing.T, tcpAddr string, tlsIn *rsyslogTLS) *rsyslogd {
	bin := rsyslogdPath(t)
	dir := t.TempDir()
	if len(dir) > 80 { // the unix socket path must stay under 108 bytes
		var err error
		if dir, err = os.MkdirTemp("", "rsyslog"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	r := &rsyslogd{
		tcpAddr: tcpAddr,
		udpAddr: freeAddr(t, "udp"),
		socket:  filepath.Join(dir, "log"),
		parsed:  filepath.Join(dir, "parsed.log"),
		raw:     filepath.Join(dir, "raw.log"),
	}
	_, tcpPort, _ := net.SplitHostPort(r.tcpAddr)
	_, udpPort, _ := net.SplitHostPort(r.udpAddr)
	var tlsGlobal, tlsInput string
	if tlsIn != nil {
		r.tlsAddr = freeAddr(t, "tcp")
		tlsGlobal, tlsInput = tlsIn.config(r.tlsAddr)
	}
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k"%s)
module(load="imtcp")
module(load="imudp")
module(load="imuxsock" SysSock.Use="off")
input(type="imtcp" address="127.0.0.1" port=%q)
%sinput(type="imudp" address="127.0.0.1" port=%q)
input(type="imuxsock" Socket=%q RateLimit.Interval="0")
template(name="parsed" type="string" string="%s")
template(name="raw" type="string" string="%%rawmsg%%\n")
*.* action(type="omfile" file=%q template="parsed")
*.* action(type="omfile" file=%q template="raw")
`, dir, tlsGlobal, tcpPort, tlsInput, udpPort, r.socket, captureTemplate, r.parsed, r.raw)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	var out lockedBuffer
	cmd := exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var stopOnce sync.Once
	r.stop = func() {
		stopOnce.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
	}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", out.String())
		}
	})

	// Ready when imtcp accepts; imudp and imuxsock when a probe comes through.
	waitFor(t, 15*time.Second, "rsyslogd to listen on tcp", func() bool {
		select {
		case <-exited:
			t.Fatalf("rsyslogd exited:\n%s", out.String())
		default:
		}
		c, err := net.Dial("tcp", r.tcpAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if tlsIn != nil {
		tlsIn.waitReady(t, r.tlsAddr)
	}
	r.probe(t, "udp", r.udpAddr)
	r.probe(t, "unixgram", r.socket)
	return r
}

// probe sends marker messages until rsyslogd shows it received one.
func (r *rsyslogd) probe(t *testing.T, network, addr string) {
	t.Helper()
	marker := "probe-" + network
	for range 40 {
		if c, err := net.Dial(network, addr); err == nil {
			c.Write([]byte("<14>May  6 07:08:09 probe[1]: " + marker))
			c.Close()
		}
		end := time.Now().Add(250 * time.Millisecond)
		for time.Now().Before(end) {
			if data, _ := os.ReadFile(r.parsed); bytes.Contains(data, []byte(marker)) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Fatalf("rsyslogd never received a %s probe", network)
}

func freeAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	ln, err := net.Listen(network, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// received returns rsyslog's parse of the messages from tcpstated.
func (r *rsyslogd) received(t *testing.T) []capture {
	data, err := os.ReadFile(r.parsed)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []capture
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.SplitN(line, "|", 7)
		if len(f) != 7 || f[3] != syslogAppName {
			continue
		}
		out = append(out, capture{f[0], f[1], f[2], f[3], f[4], f[5], f[6]})
	}
	return out
}

func (r *rsyslogd) rawLines(t *testing.T) []string {
	data, err := os.ReadFile(r.raw)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, " "+syslogAppName) {
			out = append(out, l)
		}
	}
	return out
}

// sentEvent is what zerolog handed the sink, and at which level.
type sentEvent struct {
	level zerolog.Level
	json  string
}

// logLevels sends one event per level through a real zerolog logger, the
// way the daemon does, and returns what was sent.
func logLevels(t *testing.T, s Sink, tag string) []sentEvent {
	var copyBuf lockedBuffer
	log := zerolog.New(zerolog.MultiLevelWriter(s, &copyBuf)).Level(zerolog.DebugLevel)
	levels := []zerolog.Level{zerolog.DebugLevel, zerolog.InfoLevel, zerolog.WarnLevel, zerolog.ErrorLevel}
	for i, l := range levels {
		log.WithLevel(l).Str("tag", tag).Int("id", i).Str("saddr", "10.0.0.1").Str("newstate", "ESTABLISHED").
			Str("note", `quotes " and \ and ünïcode`).Send()
	}
	var sent []sentEvent
	for i, line := range strings.Split(strings.TrimSuffix(copyBuf.String(), "\n"), "\n") {
		sent = append(sent, sentEvent{levels[i], line})
	}
	return sent
}

var wantSeverity = map[zerolog.Level]string{
	zerolog.DebugLevel: "7", zerolog.InfoLevel: "6", zerolog.WarnLevel: "4", zerolog.ErrorLevel: "3",
}

// checkArrived waits until every sent event is in rsyslog's output, whole
// and with the right severity and header fields.
func checkArrived(t *testing.T, r *rsyslogd, input string, sent []sentEvent, wantHost string) {
	t.Helper()
	find := func(json string) *capture {
		for _, c := range r.received(t) {
			msg := c.msg
			if input == "imuxsock" {
				// In the syslog(3) format rsyslog keeps the space after "tcpstated[PID]:".
				msg = strings.TrimPrefix(msg, " ")
			}
			if c.input == input && msg == json {
				return &c
			}
		}
		return nil
	}
	defer func() {
		if t.Failed() {
			data, _ := os.ReadFile(r.parsed)
			t.Logf("rsyslog parsed:\n%s", data)
		}
	}()
	waitFor(t, 15*time.Second, "events at rsyslogd via "+input, func() bool {
		for _, e := range sent {
			if find(e.json) == nil {
				return false
			}
		}
		return true
	})
	for _, e := range sent {
		c := find(e.json)
		if c.severity != wantSeverity[e.level] || c.facility != "3" {
			t.Errorf("%s: %s arrived with severity %s facility %s, want %s and 3 (daemon)",
				input, e.level, c.severity, c.facility, wantSeverity[e.level])
		}
		if c.procID != strconv.Itoa(os.Getpid()) {
			t.Errorf("%s: procid %q, want %d", input, c.procID, os.Getpid())
		}
		if wantHost != "" && c.hostname != wantHost {
			t.Errorf("%s: hostname %q, want %q", input, c.hostname, wantHost)
		}
	}
}

var rfc5424Header = regexp.MustCompile(`^<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z [!-~]{1,255} tcpstated \d+ - - \{`)

func TestRsyslogReceivesRFC5424OverTCPAndUDP(t *testing.T) {
	r := startRsyslogd(t)
	host, _ := os.Hostname()
	wantHost := sanitizeHostname(host)

	tcpSink := mustOpen(t, "syslog+tcp://"+r.tcpAddr, Options{})
	udpSink := mustOpen(t, "syslog://"+r.udpAddr, Options{})
	udpSink2 := mustOpen(t, "syslog+udp://"+r.udpAddr, Options{})

	checkArrived(t, r, "imtcp", logLevels(t, tcpSink, "tcp"), wantHost)
	checkArrived(t, r, "imudp", logLevels(t, udpSink, "udp"), wantHost)
	checkArrived(t, r, "imudp", logLevels(t, udpSink2, "udp2"), wantHost)

	// A daemon event as docs/events.md shows it, for the sample in docs/sinks.md.
	state := sentEvent{zerolog.InfoLevel, `{"level":"info","event":"state","time":"2026-11-22T04:51:33.952717950Z",` +
		`"cookie":658803,"pid":31820,"comm":"python3","owner":"connect","family":"ipv4","saddr":"127.0.0.1",` +
		`"sport":53592,"daddr":"127.0.0.1","dport":56075,"old":"SYN_SENT","new":"ESTABLISHED","dur_ms":0.059749,` +
		`"source":"tracepoint","cpu_pid":31820,"cpu_comm":"python3","netns":4026531833}`}
	tcpSink.WriteLevel(state.level, []byte(state.json+"\n"))
	checkArrived(t, r, "imtcp", []sentEvent{state}, wantHost)

	raws := r.rawLines(t)
	for _, l := range raws {
		if !rfc5424Header.MatchString(l) {
			t.Errorf("raw message is not the expected RFC 5424 form: %q", l)
		}
		if strings.Contains(l, `"event":"state"`) {
			t.Logf("as rsyslog received it: %s", l)
		}
	}

	// An event past the datagram limit is cut to the limit, on UDP only.
	big := fmt.Sprintf(`{"id":"big","pad":"%s"}`, strings.Repeat("p", 10000))
	udpSink.WriteLevel(zerolog.InfoLevel, []byte(big+"\n"))
	tcpSink.WriteLevel(zerolog.InfoLevel, []byte(big+"\n"))
	waitFor(t, 15*time.Second, "the big events", func() bool {
		n := 0
		for _, l := range r.rawLines(t) {
			if strings.Contains(l, `"id":"big"`) {
				n++
			}
		}
		return n == 2
	})
	for _, l := range r.rawLines(t) {
		if !strings.Contains(l, `"id":"big"`) {
			continue
		}
		switch {
		case strings.HasSuffix(l, big): // the TCP copy, whole
		case len(l) == maxSyslogDatagram && strings.HasPrefix(big, l[strings.Index(l, "{"):]):
		default:
			t.Errorf("big event arrived as %d bytes, neither whole nor cut at %d", len(l), maxSyslogDatagram)
		}
	}
	if st := udpSink.Stats(); st.Truncated != 1 {
		t.Errorf("udp sink truncated %d events, want 1", st.Truncated)
	}
	if st := tcpSink.Stats(); st.Truncated != 0 || st.Dropped != 0 || st.Errors != 0 {
		t.Errorf("tcp sink stats %+v", st)
	}
}

func TestRsyslogReceivesLocalSocketMessages(t *testing.T) {
	r := startRsyslogd(t)
	s := mustOpen(t, "syslog://"+r.socket, Options{})
	checkArrived(t, r, "imuxsock", logLevels(t, s, "local"), "")
	local := regexp.MustCompile(`^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d tcpstated\[\d+\]: \{`)
	for _, l := range r.rawLines(t) {
		if !local.MatchString(l) {
			t.Errorf("raw message is not in the syslog(3) form: %q", l)
		}
	}
	if raws := r.rawLines(t); len(raws) > 1 {
		t.Logf("as rsyslog received it: %s", raws[1])
	}
	if st := s.Stats(); !st.Connected || st.Written != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRsyslogTCPReconnectsAfterRestart(t *testing.T) {
	r1 := startRsyslogd(t)
	s := mustOpen(t, "syslog+tcp://"+r1.tcpAddr, Options{MaxBackoff: 50 * time.Millisecond})
	checkArrived(t, r1, "imtcp", logLevels(t, s, "before"), "")

	r1.stop()
	waitFor(t, 10*time.Second, "the sink to notice rsyslogd is gone", func() bool { return !s.Stats().Connected })
	during := logLevels(t, s, "during") // queued until rsyslogd is back

	r2 := startRsyslogdAt(t, r1.tcpAddr)
	checkArrived(t, r2, "imtcp", during, "")
	checkArrived(t, r2, "imtcp", logLevels(t, s, "after"), "")
	if st := s.Stats(); st.Reconnects < 1 || st.Dropped != 0 || st.Written != 12 {
		t.Fatalf("stats %+v, want a reconnect, 12 written, none dropped", st)
	}
}
