package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// churnResult is tcpchurn's JSON result line.
type churnResult struct {
	Connections  int64   `json:"connections"`
	Failed       int64   `json:"failed"`
	Seconds      float64 `json:"seconds"`
	Rate         float64 `json:"rate"`
	Accepted     int64   `json:"accepted"`
	ServerClosed int64   `json:"server_closed"`
	ServerPort   int     `json:"server_port"`
	FirstError   string  `json:"first_error"`
	// The processes owning the client and the server sockets.
	ClientPids []int `json:"client_pids"`
	ServerPids []int `json:"server_pids"`

	cpuSeconds float64 // what the kernel accounted to tcpchurn
}

// churnConfig is how every churn run of a bench is made.
type churnConfig struct {
	bin      string
	duration time.Duration
	clients  int
	servers  int
	port     int
}

func (c churnConfig) args() []string {
	return []string{"churn", "--duration", c.duration.String(),
		"--clients", strconv.Itoa(c.clients), "--servers", strconv.Itoa(c.servers),
		"--server-port", strconv.Itoa(c.port), "--processes"}
}

func (c churnConfig) run() (churnResult, error) {
	var r churnResult
	cmd := exec.Command(c.bin, c.args()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if err := json.Unmarshal(lastLine(stdout.Bytes()), &r); err != nil {
		return r, fmt.Errorf("tcpchurn: %v %s", runErr, strings.TrimSpace(stderr.String()))
	}
	if runErr != nil {
		return r, fmt.Errorf("tcpchurn: %v %s", runErr, strings.TrimSpace(stderr.String()))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpuSeconds = timevalSeconds(ru.Utime) + timevalSeconds(ru.Stime)
	}
	return r, nil
}

// tracer is something that watches the churn: tcpstated or bpftrace.
type tracer interface {
	name() string
	// pid is the tracer's process, which holds its BPF programs.
	pid() int
	// start returns once the tracer is attached and its start-up CPU is
	// behind it; dir is a fresh directory for its files.
	start(dir string) error
	// cpuSeconds is its CPU time so far.
	cpuSeconds() float64
	// stop ends it and returns what it cost and saw of the churn on port.
	stop(port int) (tracerRun, error)
}

// tracerRun is one tracer's account of one churn run.
type tracerRun struct {
	cpuSeconds  float64             // from attached to exit: the churn, the drain and the shutdown
	sysSeconds  float64             // of which the kernel's, in its system calls (write(2) above all)
	outBytes    int64               // what it wrote to its output file
	sinkDropped int64               // events its sink queue dropped
	programs    map[string]progStat // each BPF program's runs over the churn
	bpfNs       int64               // run time of its BPF programs over the churn (kernel.bpf_stats_enabled)
	peakRSSKiB  int64
	events      int64 // every event the tracer reported, for any socket
	lost        int64 // records it says it lost
	lostKnown   bool  // false: it did not say, which is itself a failure
	skipped     int64 // runs of its BPF programs the kernel skipped (recursion_misses)
	churn       transitions
	note        string // anything else worth a line in the report
}

func newTracerRun(cpu cpuTimes, out string) tracerRun {
	r := tracerRun{cpuSeconds: cpu.user + cpu.sys, sysSeconds: cpu.sys}
	if st, err := os.Stat(out); err == nil {
		r.outBytes = st.Size()
	}
	return r
}

// runResult is one churn run with or without a tracer.
type runResult struct {
	pair   int
	tracer string // "none", "tcpstated", "bpftrace"
	churn  churnResult
	trace  *tracerRun // nil without a tracer
	// otherPct is the share of the machine's CPU that neither tcpchurn
	// nor the tracer used during the churn: someone else's load, which
	// makes the run's rate meaningless when it is large.
	otherPct float64
	err      error
}

func (r runResult) expected() int64 { return int64(len(perConnection)) * r.churn.Connections }

func (r runResult) delivered() int64 {
	if r.trace == nil {
		return 0
	}
	return r.trace.churn.total()
}

// cpuPerEvent is the tracer process's CPU (user+system) per event it
// handled, in ns.
func (r runResult) cpuPerEvent() float64 {
	if r.trace == nil || r.trace.events == 0 {
		return 0
	}
	return r.trace.cpuSeconds * 1e9 / float64(r.trace.events)
}

// sysPerEvent is the system part of cpuPerEvent.
func (r runResult) sysPerEvent() float64 {
	if r.trace == nil || r.trace.events == 0 {
		return 0
	}
	return r.trace.sysSeconds * 1e9 / float64(r.trace.events)
}

// bytesPerEvent is the tracer's output per event.
func (r runResult) bytesPerEvent() float64 {
	if r.trace == nil || r.trace.events == 0 {
		return 0
	}
	return float64(r.trace.outBytes) / float64(r.trace.events)
}

// bpfPerEvent is the run time of the tracer's BPF programs per event, in ns.
func (r runResult) bpfPerEvent() float64 {
	if r.trace == nil || r.trace.events == 0 {
		return 0
	}
	return float64(r.trace.bpfNs) / float64(r.trace.events)
}
