package e2e

import (
	"fmt"
	"io"
	"net/http"
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

	out, err := exec.Command(daemonBinary(t), "sockets", "--addr", d.Socket, "--state", "CLOSE_WAIT", "--port", fmt.Sprint(port)).CombinedOutput()
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

	out, err = exec.Command(daemonBinary(t), "top", "--addr", d.Socket, "-n", "1").CombinedOutput()
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
	out, err = exec.Command(daemonBinary(t), "sockets", "--addr", d.Socket, "--state", "NOPE").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown TCP state") {
		t.Errorf("bad --state: %v\n%s", err, out)
	}
	out, err = exec.Command(daemonBinary(t), "sockets", "--addr", "127.0.0.1:1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot reach tcpstated") {
		t.Errorf("no daemon: %v\n%s", err, out)
	}
}

// run runs tcpstated and returns its stdout, stderr and exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb strings.Builder
	cmd := exec.Command(daemonBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("tcpstated %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// Help goes to stdout, a wrong flag is answered in two lines on stderr,
// --version works, sizes read as people write them.
func TestCommandLine(t *testing.T) {
	for _, cmd := range []string{"run", "sockets", "top", "check"} {
		out, errOut, code := run(t, cmd, "--help")
		if code != 0 || !strings.HasPrefix(out, "Usage: tcpstated") || errOut != "" {
			t.Errorf("%s --help: exit %d, stdout %.60q, stderr %q", cmd, code, out, errOut)
		}
		out, errOut, code = run(t, cmd, "--no-such-flag")
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != 2 || out != "" || len(lines) != 2 || !strings.Contains(lines[0], "no-such-flag") ||
			!strings.Contains(lines[1], "tcpstated "+cmd+" --help") {
			t.Errorf("%s --no-such-flag: exit %d, stdout %q, stderr:\n%s", cmd, code, out, errOut)
		}
	}
	if out, _, code := run(t, "--version"); code != 0 || !strings.HasPrefix(out, "tcpstated ") {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	out, _, _ := run(t, "run", "--help")
	for _, want := range []string{"(default 8M)", "(default 48M)", "(default 1m)", "(default 50ms)"} {
		if !strings.Contains(out, want) {
			t.Errorf("run --help does not show %s", want)
		}
	}
}

// The daemon's own API traffic stays out of the stream unless asked for.
func TestOwnAPITrafficLeftOut(t *testing.T) {
	for _, keep := range []bool{false, true} {
		var flags []string
		if keep {
			flags = append(flags, "--trace-own-api")
		}
		d := StartDaemon(t, flags...)
		_, port, _ := strings.Cut(d.API, ":")
		// A scrape: the network listener serves metrics.
		resp, err := http.Get("http://" + d.API + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(300 * time.Millisecond)
		n := 0
		for _, e := range d.ReadEvents() {
			if e.Event == "state" && (fmt.Sprint(e.Sport) == port || fmt.Sprint(e.Dport) == port) {
				n++
			}
		}
		if keep && n == 0 || !keep && n != 0 {
			t.Errorf("--trace-own-api %v: %d events of connections to the API port %s", keep, n, port)
		}
		d.Stop()
	}
}
