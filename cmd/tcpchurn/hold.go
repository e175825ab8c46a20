package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tcpstated/tcpstated/internal/churn"
)

// holdWorkerCommand is the hidden sub-command a hold runs in each child
// process when one process may not open enough descriptors.
const holdWorkerCommand = "hold-worker"

// fdSlack is what a process keeps back from RLIMIT_NOFILE for its own
// descriptors (runtime, stdio, listeners).
const fdSlack = 64

// holdReady is the line printed once every connection is established.
type holdReady struct {
	Ready       bool    `json:"ready"`
	Connections int     `json:"connections"`
	Processes   int     `json:"processes"`
	Ports       []int   `json:"ports"`
	Seconds     float64 `json:"seconds"`
}

func runHold(args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	count := fs.Int("count", 100000, "established connections to hold")
	ports := fs.Int("ports", 4, "server ports (listeners) per process")
	base := fs.Int("server-port", 0, "first server port (0: the kernel picks every port)")
	limit := fs.Duration("max-duration", time.Hour, "stop by itself after this long")
	fs.Parse(args)
	if *count < 1 || *ports < 1 {
		return errors.New("count and ports must be positive")
	}
	warnFileMax(*count)

	perProcess := int(churn.RaiseFileLimit(uint64(2**count+fdSlack+*ports))-fdSlack-uint64(*ports)) / 2
	if perProcess < 1 {
		return errors.New("RLIMIT_NOFILE leaves no room for connections")
	}
	if *count <= perProcess {
		return holdHere(*count, portList(*base, 0, *ports), 0, *limit)
	}
	return holdInProcesses(*count, perProcess, *ports, *base, *limit)
}

// runHoldWorker holds one share of the connections for a parent hold.
func runHoldWorker(args []string) error {
	fs := flag.NewFlagSet(holdWorkerCommand, flag.ExitOnError)
	count := fs.Int("count", 0, "connections")
	first := fs.Int("first-source", 0, "index of the first source address")
	ports := fs.String("ports", "0", "comma-separated server ports (0: the kernel picks)")
	limit := fs.Duration("max-duration", time.Hour, "stop by itself after this long")
	fs.Parse(args)
	var pl []int
	for _, s := range strings.Split(*ports, ",") {
		p, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("bad port %q", s)
		}
		pl = append(pl, p)
	}
	churn.RaiseFileLimit(uint64(2**count + fdSlack + len(pl)))
	return holdHere(*count, pl, *first, *limit)
}

// holdHere holds count connections in this process, prints the ready
// line, and waits for SIGINT, SIGTERM or the time limit.
func holdHere(count int, ports []int, firstSource int, limit time.Duration) error {
	start := time.Now()
	h, err := churn.Hold(count, ports, firstSource)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := printJSON(holdReady{Ready: true, Connections: h.Connections(), Processes: 1,
		Ports: h.Ports, Seconds: time.Since(start).Seconds()}); err != nil {
		return err
	}
	waitForStop(limit)
	return nil
}

// holdInProcesses splits the hold over child processes of at most
// perProcess connections each, since this process cannot open them all.
// The children connect in parallel.
func holdInProcesses(count, perProcess, ports, base int, limit time.Duration) error {
	start := time.Now()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	n := (count + perProcess - 1) / perProcess
	children := make([]*holdWorker, 0, n)
	stopChildren := func() {
		for _, w := range children {
			w.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, w := range children {
			w.cmd.Wait()
		}
	}
	first := 0
	for i := range n {
		share := count / n
		if i < count%n {
			share++
		}
		w, err := startHoldWorker(exe, share, first, portList(base, i*ports, ports), limit)
		if err != nil {
			stopChildren()
			return fmt.Errorf("hold process %d of %d: %w", i+1, n, err)
		}
		children = append(children, w)
		first += share
	}
	ready := holdReady{Ready: true, Processes: n}
	for i, w := range children {
		line, err := w.waitReady()
		if err != nil {
			stopChildren()
			return fmt.Errorf("hold process %d of %d: %w", i+1, n, err)
		}
		ready.Connections += line.Connections
		ready.Ports = append(ready.Ports, line.Ports...)
	}
	ready.Seconds = time.Since(start).Seconds()
	if err := printJSON(ready); err != nil {
		stopChildren()
		return err
	}
	waitForStop(limit)
	stopChildren()
	return nil
}

type holdWorker struct {
	cmd *exec.Cmd
	out io.Reader
}

// startHoldWorker starts one child holding count connections.
func startHoldWorker(exe string, count, first int, ports []int, limit time.Duration) (*holdWorker, error) {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(p)
	}
	c := exec.Command(exe, holdWorkerCommand, "-count", strconv.Itoa(count),
		"-first-source", strconv.Itoa(first), "-ports", strings.Join(ps, ","),
		"-max-duration", limit.String())
	c.Stderr = os.Stderr
	// A child must not outlive a parent that was killed outright.
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	return &holdWorker{cmd: c, out: out}, nil
}

// waitReady reads the child's ready line; a child that fails exits
// without one, and its error is on stderr.
func (w *holdWorker) waitReady() (holdReady, error) {
	var ready holdReady
	line, err := bufio.NewReader(w.out).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &ready)
	}
	if err == nil && !ready.Ready {
		err = fmt.Errorf("unexpected line %q", line)
	}
	return ready, err
}

// portList is n ports from base+offset, or n zeros (kernel-picked) when
// base is 0.
func portList(base, offset, n int) []int {
	ps := make([]int, n)
	for i := range ps {
		if base != 0 {
			ps[i] = base + offset + i
		}
	}
	return ps
}

func waitForStop(limit time.Duration) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-sig:
	case <-time.After(limit):
	}
}

// warnFileMax says so when the system-wide descriptor limit cannot fit
// both ends of every connection; the hold would then fail part way.
func warnFileMax(count int) {
	b, err := os.ReadFile("/proc/sys/fs/file-max")
	if err != nil {
		return
	}
	max, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if need := uint64(2*count) + 1024; max > 0 && max < need {
		fmt.Fprintf(os.Stderr, "tcpchurn: fs.file-max is %d, a hold of %d needs about %d\n", max, count, need)
	}
}
