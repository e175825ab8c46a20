package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// The features a kernel may refuse, and the switch that turns one off the
// same way: each run here has one off and checks that the loss is said
// (log, /healthz, metric) and that what does not need it still works.

var allFeatures = []string{"core", "timewait", "snapshot", "files", "accept", "resets"}

// featureWanted is the state a feature must be in with off turned off:
// accept needs the sock:sk_data_ready tracepoint (Linux 6.3), which older
// kernels of the matrix lack: there it is unsupported (not a fault).
func featureWanted(t *testing.T, name, off string) string {
	switch {
	case name == off:
		return "disabled"
	case name == "accept" && !kernelHasTracepoint(t, "sk_data_ready"):
		return "unsupported"
	}
	return "on"
}

// kernelHasTracepoint says whether the kernel's BTF declares a tracepoint,
// the test's own look, not the daemon's.
func kernelHasTracepoint(t *testing.T, name string) bool {
	t.Helper()
	b, err := os.ReadFile("/sys/kernel/btf/vmlinux")
	if err != nil {
		t.Fatalf("kernel BTF: %v", err)
	}
	return bytes.Contains(b, []byte("\x00btf_trace_"+name+"\x00"))
}

// checkFeatureReported: the feature is off and says so everywhere.
func checkFeatureReported(t *testing.T, d *Daemon, off string) {
	t.Helper()
	var h struct {
		Status   string
		Features []struct{ Name, State, Reason, Loses string }
	}
	d.get("/healthz", nil, &h)
	if h.Status != "ok" {
		t.Errorf("healthz status %q: a feature turned off on purpose is not a fault", h.Status)
	}
	states := map[string]string{}
	for _, f := range h.Features {
		states[f.Name] = f.State
		if f.Name == off && (f.State != "disabled" || f.Loses == "" || !strings.Contains(f.Reason, "--disable-feature")) {
			t.Errorf("healthz: %+v, want %s disabled with what it loses", f, off)
		}
	}
	for _, name := range allFeatures {
		want := featureWanted(t, name, off)
		if states[name] != want {
			t.Errorf("healthz: feature %s is %q, want %q (all: %v)", name, states[name], want, states)
		}
	}

	resp, err := http.Get("http://" + d.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range allFeatures {
		want := 0
		if featureWanted(t, name, off) == "on" {
			want = 1
		}
		if series := fmt.Sprintf("tcpstated_feature_enabled{feature=%q} %d\n", name, want); !strings.Contains(string(body), series) {
			t.Errorf("/metrics lacks %q", series)
		}
	}

	var logged bool
	for _, line := range strings.Split(d.stderr.String(), "\n") {
		var l struct{ Message, Feature, Loses string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == "feature disabled" && l.Feature == off && l.Loses != "" {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no start-up log line for the disabled %s:\n%s", off, d.stderr.String())
	}
}

var clientClosesFirstNoTimeWait = []string{"CLOSE>SYN_SENT", "SYN_SENT>ESTABLISHED", "ESTABLISHED>FIN_WAIT1", "FIN_WAIT1>FIN_WAIT2", "FIN_WAIT2>CLOSE"}

// Without timewait, closes end as the full socket does: FIN_WAIT2 -> CLOSE,
// exact and with the right owners; nothing claims a TIME_WAIT.
func TestWithoutTimeWait(t *testing.T) {
	needKernel(t)
	// A TIME_WAIT from before the start: nothing would end its row, so
	// the snapshot must not make one.
	oldServer, oldClient := StartPeer(t), StartPeer(t)
	oldPort := oldServer.Port("listen tcp4 127.0.0.1:0")
	oneConnection(oldServer, oldClient, "tcp4", oldPort)
	d := StartDaemon(t, "--disable-feature", "timewait")
	checkFeatureReported(t, d, "timewait")
	if socks := d.Sockets("TIME_WAIT", oldPort); len(socks) != 0 {
		t.Errorf("without timewait, the table lists a TIME_WAIT from before the start: %+v", socks)
	}
	port := clientFirstChecked(t, d, ownHost(t), clientClosesFirstNoTimeWait)
	time.Sleep(300 * time.Millisecond)
	for _, e := range onPort(d.ReadEvents(), port) {
		if e.Old == "TIME_WAIT" || e.New == "TIME_WAIT" {
			t.Errorf("a TIME_WAIT without the timewait feature: %s", e)
		}
	}
}

// Without the snapshot, sockets older than the daemon are unknown until
// they change state; new ones are traced exactly.
func TestWithoutSnapshot(t *testing.T) {
	needKernel(t)
	h := ownHost(t)
	oldServer, oldClient := StartPeer(t), StartPeer(t)
	oldPort := oldServer.Port("listen tcp4 127.0.0.1:0")
	oneConnection(oldServer, oldClient, "tcp4", oldPort) // a TIME_WAIT from before
	d := StartDaemon(t, "--disable-feature", "snapshot")
	checkFeatureReported(t, d, "snapshot")
	// The client's timewait socket turns TIME_WAIT when the server's FIN
	// reaches it: in a TCG guest that can come late.
	eventually(t, "one TIME_WAIT from before the start", 5*time.Second, func() error {
		if n := h.ssCount(t, "time-wait", oldPort); n != 1 {
			return fmt.Errorf("ss counts %d; port %d in any state: %v", n, oldPort,
				h.ssRows(t, "all", fmt.Sprintf("( sport = :%d or dport = :%d )", oldPort, oldPort)))
		}
		return nil
	})
	if socks := d.Sockets("TIME_WAIT", oldPort); len(socks) != 0 {
		t.Errorf("without the snapshot, the table lists a TIME_WAIT from before the start: %+v", socks)
	}
	clientFirstChecked(t, d, h, clientClosesFirst)
}

// clientFirstChecked: one client-closes-first connection, every
// transition and owner exact; the client's last step ends clientSteps.
func clientFirstChecked(t *testing.T, d *Daemon, h *Host, clientSteps []string) (port int) {
	t.Helper()
	server, client := h.StartPeer(t), h.StartPeer(t)
	port = server.Port("listen tcp4 127.0.0.1:0")
	oneConnection(server, client, "tcp4", port)
	server.Do("closelistener")
	last := clientSteps[len(clientSteps)-1]
	evs := d.WaitFor("client "+last+", server LAST_ACK>CLOSE, listener LISTEN>CLOSE", 10*time.Second, func(evs []Event) bool {
		return lastSteps(port, last, "LAST_ACK>CLOSE", "LISTEN>CLOSE")(h.Only(evs))
	})
	checkSockets(t, h.Only(evs), port, "ipv4",
		wantSocket{"listener", listenerSteps, server.Pid},
		wantSocket{"server", passiveClose, server.Pid},
		wantSocket{"client", clientSteps, client.Pid},
	)
	return port
}

// Without the file walk, leaks are still found and named by the process
// that accepted them (the listener's owner), but without fds.
func TestWithoutFiles(t *testing.T) {
	const threshold = time.Second
	d := StartDaemon(t, "--disable-feature", "files", "--close-wait-threshold", threshold.String())
	checkFeatureReported(t, d, "files")
	h := ownHost(t)
	server, _, port := leakyServer(t, h)
	evs := d.WaitFor("one close_wait_leak per socket", 10*time.Second, func(evs []Event) bool {
		return len(leakEvents(evs, "close_wait_leak", port)) >= leakN
	})
	leaks := leakEvents(evs, "close_wait_leak", port)
	if len(leaks) != leakN {
		t.Fatalf("%d close_wait_leak events, want %d:\n%s", len(leaks), leakN, dump(leaks))
	}
	for _, e := range leaks {
		if e.Pid != server.Pid || e.FD != nil || e.AgeS < threshold.Seconds() || e.State != "CLOSE_WAIT" {
			t.Errorf("leak %s (fd %v): want owner %d, no fd, older than %v", e, e.FD, server.Pid, threshold)
		}
	}
	for _, s := range d.Sockets("CLOSE_WAIT", port) {
		if s.Pid != server.Pid || s.FD != nil {
			t.Errorf("socket %+v: want owner %d and no fd", s, server.Pid)
		}
	}
	clientFirstChecked(t, d, h, clientClosesFirst)
}
