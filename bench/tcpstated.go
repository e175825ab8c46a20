package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// daemonTracer runs tcpstated as a user would, writing JSON lines to a file.
type daemonTracer struct {
	bin     string
	label   string   // "tcpstated", or "tcpstated (variant)"
	args    []string // extra flags of a variant
	dir     string
	p       *proc
	cpuBase cpuTimes // CPU used before it was ready: start-up, not churn
	hwmKiB  int64    // VmHWM just before it was told to stop
	owners  owners   // the churn's processes, for the owner check
}

// expectOwners tells the tracer which processes own the churn's sockets.
func (d *daemonTracer) expectOwners(client, server []int) { d.owners = newOwners(client, server) }

const (
	daemonReadyTimeout = 60 * time.Second
	daemonStopTimeout  = 60 * time.Second
)

func (d *daemonTracer) cpuSeconds() float64 {
	s, _ := procCPUSeconds(d.p.pid())
	return s
}

func (d *daemonTracer) name() string {
	if d.label == "" {
		return "tcpstated"
	}
	return d.label
}

func (d *daemonTracer) pid() int { return d.p.pid() }

func (d *daemonTracer) eventsPath() string { return filepath.Join(d.dir, "events.json") }
func (d *daemonTracer) logPath() string    { return filepath.Join(d.dir, "tcpstated.log") }

func (d *daemonTracer) start(dir string) error {
	d.dir = dir
	ready := filepath.Join(dir, "ready")
	log, err := os.Create(d.logPath())
	if err != nil {
		return err
	}
	defer log.Close() // the child holds its own copy
	cmd := exec.Command(d.bin, append([]string{"run", "--format", "json",
		"--sink", "file:" + d.eventsPath(), "--ready-file", ready, "--listen", "127.0.0.1:0"}, d.args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if d.p, err = startProc(cmd); err != nil {
		return err
	}
	err = d.p.waitReady(daemonReadyTimeout, func() bool {
		st, err := os.Stat(ready)
		return err == nil && st.Size() > 0
	})
	if err != nil {
		d.p.stop(syscall.SIGKILL, time.Second)
		return fmt.Errorf("%v: %s", err, tail(d.logPath(), 500))
	}
	d.cpuBase, _ = procTimes(d.p.pid())
	return nil
}

func (d *daemonTracer) stop(port int) (tracerRun, error) {
	d.hwmKiB, _ = procStatusKiB(d.p.pid(), "VmHWM")
	stopErr := d.p.stop(os.Interrupt, daemonStopTimeout)
	u := d.p.usage()
	run := newTracerRun(u.cpu.minus(d.cpuBase), d.eventsPath())
	run.peakRSSKiB = max(u.maxRSSKiB, d.hwmKiB)
	sum, err := readStopSummary(d.logPath())
	if err != nil {
		return run, err
	}
	// The daemon's own count: changes the kernel ran neither its state
	// program nor the nested stand-in for. The stand-in's own
	// recursion_misses are changes the state program took.
	run.skipped = sum.Skipped
	// Costs are per transition, the unit of the targets: connection
	// summaries and findings ride on them.
	run.events, run.lost, run.lostKnown = sum.Events, *sum.Lost, sum.hasLost
	if sum.Transitions != nil {
		run.events = *sum.Transitions
	}
	run.sinkDropped = sum.SinkDropped
	if sum.SinkDropped > 0 || sum.TableFull > 0 || sum.DecodeErrors > 0 {
		run.note = fmt.Sprintf("sink_dropped %d, socket_table_full %d, decode_errors %d",
			sum.SinkDropped, sum.TableFull, sum.DecodeErrors)
	}
	if stopErr != nil {
		return run, fmt.Errorf("tcpstated: %v: %s", stopErr, tail(d.logPath(), 500))
	}
	run.churn, err = countFile(d.eventsPath(), port, func(r io.Reader, port int) (transitions, error) {
		return countDaemonEventsOwned(r, port, d.owners)
	})
	return run, err
}

// stopSummary is the daemon's last log line: {"level":"info","events":N,
// "lost":N,...,"message":"tcpstated stopped"}.
type stopSummary struct {
	Message string `json:"message"`
	Events  int64  `json:"events"`
	// Transitions: the state events among them (older daemons: absent,
	// and every event was one).
	Transitions  *int64 `json:"transitions"`
	Lost         *int64 `json:"lost"`
	Skipped      int64  `json:"skipped"`
	SinkDropped  int64  `json:"sink_dropped"`
	TableFull    int64  `json:"socket_table_full"`
	DecodeErrors int64  `json:"decode_errors"`
	hasLost      bool
}

func readStopSummary(logPath string) (stopSummary, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return stopSummary{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), "tcpstated stopped") {
			continue
		}
		var s stopSummary
		if json.Unmarshal(sc.Bytes(), &s) != nil || s.Message != "tcpstated stopped" {
			continue
		}
		if s.Lost != nil {
			s.hasLost = true
		} else {
			s.Lost = new(int64)
		}
		return s, nil
	}
	return stopSummary{}, fmt.Errorf(`no "tcpstated stopped" summary in its log: %s`, tail(logPath, 500))
}
