package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// tcpstated sockets and top read a running daemon's API.
func TestSocketsAndTopCommands(t *testing.T) {
	d := StartDaemon(t, "--close-wait-threshold", "1s")
	h := ownHost(t)
	server, _, port := leakyServer(t, h)
	checkLeakedSockets(t, d, h, server, port, time.Second, false)

	out, err := exec.Command(daemonBinary(t), "sockets", "--addr", d.API, "--state", "CLOSE_WAIT", "--port", fmt.Sprint(port)).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpstated sockets: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != leakN+1 || !strings.HasPrefix(lines[0], "STATE") {
		t.Fatalf("want a header and %d rows:\n%s", leakN, out)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 8 || f[0] != "CLOSE_WAIT" || f[1] != fmt.Sprintf("127.0.0.1:%d", port) || f[4] != fmt.Sprint(server.Pid) || f[6] == "-" {
			t.Errorf("row %q: want CLOSE_WAIT, local port %d, pid %d, an fd", l, port, server.Pid)
		}
	}

	out, err = exec.Command(daemonBinary(t), "top", "--addr", d.API, "-n", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("tcpstated top: %v\n%s", err, out)
	}
	var row string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[0] == fmt.Sprint(server.Pid) {
			row = l
		}
	}
	// PID COMM CW_LEAKED CLOSE_WAIT ...: the leaker comes first.
	if f := strings.Fields(row); len(f) < 4 || f[2] != fmt.Sprint(leakN) || f[3] != fmt.Sprint(leakN) {
		t.Errorf("top has no row for %d with %d leaked CLOSE_WAIT:\n%s", server.Pid, leakN, out)
	}
	if i, j := strings.Index(string(out), "PID"), strings.Index(string(out), row); i < 0 || j < 0 || strings.Count(string(out)[i:j], "\n") != 1 {
		t.Errorf("the leaking process is not first:\n%s", out)
	}

	// Bad input and a dead daemon give errors that say what is wrong.
	out, err = exec.Command(daemonBinary(t), "sockets", "--addr", d.API, "--state", "NOPE").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown TCP state") {
		t.Errorf("bad --state: %v\n%s", err, out)
	}
	out, err = exec.Command(daemonBinary(t), "sockets", "--addr", "127.0.0.1:1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot reach tcpstated") {
		t.Errorf("no daemon: %v\n%s", err, out)
	}
}
