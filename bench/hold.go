package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// holdResult is the 100k-live-sockets scenario: how much memory the
// daemon needs to follow that many established connections.
type holdResult struct {
	connections int
	readySecs   float64 // for tcpchurn to establish them all
	baseKiB     int64   // daemon's VmRSS once ready, before the hold
	hwmKiB      int64   // daemon's VmHWM after the settle time: the target
	maxRSSKiB   int64   // daemon's peak over its whole life, shutdown included
	lost        int64
	lostKnown   bool
	err         error
}

const holdReadyTimeout = 5 * time.Minute

// waitTimeWaitDrain waits, up to max, until fewer than a thousand TIME_WAIT
// sockets are left (earlier churn leaves up to net.ipv4.tcp_max_tw_buckets
// behind for 60 s), and says how many were left and how long it waited.
func waitTimeWaitDrain(max time.Duration) (int, time.Duration) {
	start := time.Now()
	for {
		n := timeWaitSockets()
		if n < 1000 || time.Since(start) >= max {
			return n, time.Since(start)
		}
		time.Sleep(time.Second)
	}
}

// timeWaitSockets reads the "tw" count of /proc/net/sockstat (IPv4 and
// IPv6 share it); -1 if unreadable.
func timeWaitSockets() int {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "tw" {
			if n, err := strconv.Atoi(f[i+1]); err == nil {
				return n
			}
		}
	}
	return -1
}

func runHold(churnBin, daemonBin, dir string, count int, settle time.Duration) holdResult {
	var r holdResult
	d := &daemonTracer{bin: daemonBin}
	if r.err = d.start(dir); r.err != nil {
		return r
	}
	r.baseKiB, _ = procStatusKiB(d.p.pid(), "VmRSS")
	cmd := exec.Command(churnBin, "hold", "--count", strconv.Itoa(count))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		d.stop(0)
		r.err = err
		return r
	}
	var ready struct {
		Ready       bool    `json:"ready"`
		Connections int     `json:"connections"`
		Seconds     float64 `json:"seconds"`
	}
	line := make(chan error, 1)
	go func() {
		b, err := bufio.NewReader(out).ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(b, &ready)
		}
		line <- err
	}()
	select {
	case err = <-line:
	case <-time.After(holdReadyTimeout):
		err = fmt.Errorf("tcpchurn hold not ready after %s", holdReadyTimeout)
	}
	if err == nil && !ready.Ready {
		err = fmt.Errorf("tcpchurn hold: no ready line")
	}
	if err == nil {
		r.connections, r.readySecs = ready.Connections, ready.Seconds
		// Let the daemon catch up with the burst of establishments and
		// its periodic scans before reading its high-water mark.
		time.Sleep(settle)
		r.hwmKiB, err = procStatusKiB(d.p.pid(), "VmHWM")
	}
	run, stopErr := d.stop(0)
	r.maxRSSKiB, r.lost, r.lostKnown = run.peakRSSKiB, run.lost, run.lostKnown
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if err == nil {
		err = stopErr
	}
	r.err = err
	return r
}
