package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpstated/tcpstated/internal/testkit"
)

// Event is one line of the daemon's JSON stream, as a pipeline reads it.
type Event struct {
	Event   string   `json:"event"`
	Time    string   `json:"time"`
	Cookie  uint64   `json:"cookie"`
	Pid     int      `json:"pid"`
	Comm    string   `json:"comm"`
	Owner   string   `json:"owner"`
	FD      *int     `json:"fd"`
	Family  string   `json:"family"`
	Netns   uint64   `json:"netns"`
	Saddr   string   `json:"saddr"`
	Sport   int      `json:"sport"`
	Daddr   string   `json:"daddr"`
	Dport   int      `json:"dport"`
	Old     string   `json:"old"`
	New     string   `json:"new"`
	DurMs   *float64 `json:"dur_ms"`
	Source  string   `json:"source"`
	Reason  string   `json:"reason"`
	CPUPid  int      `json:"cpu_pid"`
	State   string   `json:"state"`
	AgeS    float64  `json:"age_s"`
	AgeLB   bool     `json:"age_is_lower_bound"`
	Count   int      `json:"count"`
	PortRng int      `json:"port_range"`
	// connection
	Role        string     `json:"role"`
	End         string     `json:"end"`
	ClosedFirst string     `json:"closed_first"`
	TimeWait    *bool      `json:"time_wait"`
	LifeMs      float64    `json:"life_ms"`
	LifeLB      bool       `json:"life_is_lower_bound"`
	HandshakeMs *float64   `json:"handshake_ms"`
	StatesMs    statesInMs `json:"states_ms"`
	BytesSent   *uint64    `json:"bytes_sent"`
	BytesRecv   *uint64    `json:"bytes_received"`
	SRTTMs      *float64   `json:"srtt_ms"`
	Retransmits *int       `json:"retransmits"`
	// reset
	Direction string `json:"direction"`
}

// statesInMs is a connection's states_ms object, in its order.
type statesInMs []stateMs

type stateMs struct {
	State string
	Ms    float64
}

func (s *statesInMs) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		var ms float64
		if err := dec.Decode(&ms); err != nil {
			return err
		}
		*s = append(*s, stateMs{k.(string), ms})
	}
	_, err := dec.Token() // }
	return err
}

func (e Event) String() string {
	s := fmt.Sprintf("%s %s %s->%s pid=%d(%s) cpu_pid=%d cookie=%d %s:%d->%s:%d", e.Time, e.Event, e.Old, e.New, e.Pid, e.Comm, e.CPUPid, e.Cookie, e.Saddr, e.Sport, e.Daddr, e.Dport)
	if e.Source != "" {
		s += " source=" + e.Source
	}
	if e.Reason != "" {
		s += " reason=" + e.Reason
	}
	if e.DurMs != nil {
		s += fmt.Sprintf(" dur_ms=%g", *e.DurMs)
	}
	if e.Event == "connection" {
		s += fmt.Sprintf(" role=%s end=%s closed_first=%s states_ms=%v", e.Role, e.End, e.ClosedFirst, e.StatesMs)
	}
	if e.Event == "reset" {
		s += fmt.Sprintf(" direction=%s state=%s", e.Direction, e.State)
	}
	return s
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// daemonBinary is $TCPSTATED_BIN, or tcpstated built from this checkout.
func daemonBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("TCPSTATED_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tcpstated-e2e")
		if err != nil {
			buildErr = err
			return
		}
		os.Chmod(dir, 0o755) // the unprivileged tests run it as nobody
		builtBin = filepath.Join(dir, "tcpstated")
		out, err := exec.Command("go", "build", "-o", builtBin, "../../cmd/tcpstated").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// needKernel: see testkit.NeedKernel.
func needKernel(t *testing.T) {
	t.Helper()
	testkit.NeedKernel(t)
}

// Daemon is a running tcpstated writing JSON to a file.
type Daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	Events string // path of the event file
	API    string // host:port of the network listener (metrics, health)
	Socket string // path of the API socket (everything)
	stderr syncBuffer
	done   chan struct{}
}

// syncBuffer is a bytes.Buffer the test may read while the daemon writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartDaemon runs tcpstated with extra flags and waits for --ready-file.
func StartDaemon(t *testing.T, flags ...string) *Daemon {
	t.Helper()
	return StartDaemonWith(t, nil, flags...)
}

// StartDaemonWith lets setup adjust the command (credentials, environment)
// before it starts.
func StartDaemonWith(t *testing.T, setup func(cmd *exec.Cmd, dir string), flags ...string) *Daemon {
	t.Helper()
	needKernel(t)
	dir := t.TempDir()
	d := &Daemon{t: t, Events: filepath.Join(dir, "events.json"), done: make(chan struct{})}
	ready := filepath.Join(dir, "ready")
	args := append([]string{"run", "--format", "json", "--sink", "file:" + d.Events,
		"--ready-file", ready, "--listen", "127.0.0.1:0", "--api-socket", filepath.Join(dir, "run", "api.sock"),
		"--poll-interval", "20ms"}, flags...)
	d.cmd = exec.Command(daemonBinary(t), args...)
	d.cmd.Stderr = &d.stderr
	// The socket's directory: writable by the daemon's user alone, or the
	// daemon refuses it.
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(d.cmd, dir)
	}
	if a := d.cmd.SysProcAttr; a != nil && a.Credential != nil {
		if err := os.Chown(run, int(a.Credential.Uid), int(a.Credential.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	// A test binary killed mid-run must not leave a tracer behind.
	if d.cmd.SysProcAttr == nil {
		d.cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	d.cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting tcpstated: %v", err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.Stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(ready)
		if err == nil && len(b) > 0 {
			var r struct{ Listen, Socket string }
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("ready file %q: %v", b, err)
			}
			d.API, d.Socket = r.Listen, r.Socket
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("tcpstated exited before it was ready: %v\n%s", d.cmd.ProcessState, d.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcpstated not ready after 30s\n%s", d.stderr.String())
		}
	}
}

// socketClient talks HTTP over a daemon's API socket at path.
func socketClient(path string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

// APIGet sends GET path (with its query) over the API socket.
func (d *Daemon) APIGet(pathAndQuery string) (*http.Response, error) {
	return socketClient(d.Socket).Get("http://tcpstated" + pathAndQuery)
}

// Stop sends SIGINT and waits; it returns the daemon's stderr.
func (d *Daemon) Stop() string {
	if d.cmd.Process != nil && d.cmd.ProcessState == nil {
		d.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
			d.t.Errorf("tcpstated did not stop on SIGINT\n%s", d.stderr.String())
		}
	}
	return d.stderr.String()
}

// ReadEvents returns every event written so far.
func (d *Daemon) ReadEvents() []Event {
	d.t.Helper()
	b, err := os.ReadFile(d.Events)
	if err != nil && !os.IsNotExist(err) {
		d.t.Fatal(err)
	}
	// The daemon may be writing: a last line without its newline is not
	// complete yet (seen under qemu TCG).
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	var out []Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			d.t.Fatalf("event line is not JSON: %v: %s", err, sc.Text())
		}
		out = append(out, e)
	}
	return out
}

// WaitFor polls the event file until cond holds, or fails after timeout.
func (d *Daemon) WaitFor(what string, timeout time.Duration, cond func([]Event) bool) []Event {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := d.ReadEvents()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out after %v waiting for %s; events:\n%s\ndaemon stderr:\n%s", timeout, what, dump(evs), d.stderr.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func dump(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("  " + e.String() + "\n")
	}
	return b.String()
}

// onPort keeps the state events of sockets with port at either end.
func onPort(evs []Event, port int) []Event {
	var out []Event
	for _, e := range evs {
		if e.Event == "state" && (e.Sport == port || e.Dport == port) {
			out = append(out, e)
		}
	}
	return out
}

// bySocket groups events by cookie, in stream order.
func bySocket(evs []Event) map[uint64][]Event {
	m := map[uint64][]Event{}
	for _, e := range evs {
		m[e.Cookie] = append(m[e.Cookie], e)
	}
	return m
}

// transitions renders a socket's events as "OLD>NEW" steps.
func transitions(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Old + ">" + e.New
	}
	return out
}
