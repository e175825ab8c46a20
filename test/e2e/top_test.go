package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tmuxSession is a detached tmux server of the test's own, with one window.
type tmuxSession struct {
	t      *testing.T
	socket string
}

func newTmux(t *testing.T, width, height int, command string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("TCPSTATED_IN_GUEST") == "1" {
			// top talks HTTP to the daemon: nothing in it depends on the
			// kernel, and the host runs this test.
			t.Skip("tmux is not in the kernel-test guest")
		}
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux not installed (scripts/provision.sh --test); CI=true: not skipping")
		}
		t.Skip("tmux not installed")
	}
	s := &tmuxSession{t: t, socket: fmt.Sprintf("tcpstated-test-%d", os.Getpid())}
	s.run("new-session", "-d", "-s", "top", "-x", fmt.Sprint(width), "-y", fmt.Sprint(height), command)
	t.Cleanup(func() { exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	return s
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

// screen is what the window shows now, one string per line.
func (s *tmuxSession) screen() []string {
	s.t.Helper()
	out, err := exec.Command("tmux", "-L", s.socket, "capture-pane", "-p", "-t", "top").Output()
	if err != nil {
		return nil // the window has closed
	}
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
}

// waitScreen waits until the screen holds want.
func (s *tmuxSession) waitScreen(what, want string) []string {
	s.t.Helper()
	var lines []string
	eventually(s.t, what, 10*time.Second, func() error {
		lines = s.screen()
		if strings.Contains(strings.Join(lines, "\n"), want) {
			return nil
		}
		return fmt.Errorf("screen:\n%s", strings.Join(lines, "\n"))
	})
	return lines
}

func fits(t *testing.T, lines []string, width, height int) {
	t.Helper()
	if len(lines) > height {
		t.Errorf("%d lines on a %d-line terminal", len(lines), height)
	}
	for _, l := range lines {
		if len([]rune(l)) > width {
			t.Errorf("line wider than %d columns: %q", width, l)
		}
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "tcpstated top") {
		t.Errorf("the title is not on the first line:\n%s", strings.Join(lines, "\n"))
	}
}

// top in a real terminal: it fits the window and follows a resize, a key
// sorts, it survives the daemon's restart, and q quits with 0.
func TestTopInTerminal(t *testing.T) {
	d := StartDaemon(t, "--close-wait-threshold", "1s")
	server, _, port := leakyServer(t, ownHost(t))
	checkLeakedSockets(t, d, ownHost(t), server, port, time.Second, false)
	exit := filepath.Join(t.TempDir(), "exit")
	s := newTmux(t, 100, 20, fmt.Sprintf("%s top --addr %s --interval 200ms; echo $? > %s", daemonBinary(t), d.Socket, exit))

	lines := s.waitScreen("top showing the leaker", fmt.Sprint(server.Pid))
	fits(t, lines, 100, 20)
	var header, first string
	for i, l := range lines {
		if strings.HasPrefix(l, "PID") && i+1 < len(lines) {
			header, first = l, lines[i+1]
		}
	}
	if f := strings.Fields(first); !strings.Contains(header, "LEAKING") || len(f) < 4 || f[0] != fmt.Sprint(server.Pid) || f[2] != fmt.Sprint(leakN) {
		t.Errorf("first row %q under %q: want the leaker %d with %d leaking", first, header, server.Pid, leakN)
	}

	s.run("resize-window", "-t", "top", "-x", "60", "-y", "12")
	time.Sleep(500 * time.Millisecond)
	fits(t, s.screen(), 60, 12)

	s.run("resize-window", "-t", "top", "-x", "100", "-y", "20")
	s.run("send-keys", "-t", "top", "p")
	lines = s.waitScreen("sorted by pid", "sort: pid")
	if pids := rowPids(lines); len(pids) < 2 || !slices.IsSorted(pids) {
		t.Errorf("sorted by pid, the rows are %v:\n%s", pids, strings.Join(lines, "\n"))
	}

	// The daemon goes away and comes back on the same address.
	sock := d.Socket
	d.Stop()
	s.waitScreen("top waiting for the daemon", "daemon unreachable")
	StartDaemon(t, "--api-socket", sock)
	s.waitScreen("top back with the new daemon", "sort: pid")
	eventually(t, "rows again", 10*time.Second, func() error {
		if strings.Contains(strings.Join(s.screen(), "\n"), "unreachable") {
			return fmt.Errorf("still unreachable")
		}
		return nil
	})

	s.run("send-keys", "-t", "top", "q")
	eventually(t, "top to quit on q", 5*time.Second, func() error {
		b, err := os.ReadFile(exit)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != "0" {
			t.Fatalf("top exited with %s after q, want 0", b)
		}
		return nil
	})
}

// rowPids are the PID column of top's table, in screen order.
func rowPids(lines []string) []int {
	var pids []int
	in := false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "PID" {
			in = true
			continue
		}
		if pid, err := strconv.Atoi(firstField(f)); in && err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func firstField(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
