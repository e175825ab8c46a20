package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// bpftraceProgram is the usual one-liner a user would reach for, printing
// every transition, with the ports added so the churn's own can be counted.
const bpftraceProgram = `tracepoint:sock:inet_sock_set_state { printf("%d %d %d %d %d\n", pid, args->oldstate, args->newstate, args->sport, args->dport); }`

// bpftraceTracer is the peer the report compares tcpstated with.
type bpftraceTracer struct {
	bin     string
	dir     string
	p       *proc
	cpuBase cpuTimes
}

const tracefs = "/sys/kernel/tracing"

// ensureTracefs mounts tracefs, which classic tracepoints (and so
// bpftrace) need and which is not mounted at boot here.
func ensureTracefs() error {
	if _, err := os.Stat(filepath.Join(tracefs, "events")); err == nil {
		return nil
	}
	if err := syscall.Mount("nodev", tracefs, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs on %s (bpftrace needs it): %w", tracefs, err)
	}
	return nil
}

func (b *bpftraceTracer) cpuSeconds() float64 {
	s, _ := procCPUSeconds(b.p.pid())
	return s
}

func (b *bpftraceTracer) name() string { return "bpftrace" }

func (b *bpftraceTracer) pid() int { return b.p.pid() }

func (b *bpftraceTracer) outPath() string { return filepath.Join(b.dir, "bpftrace.out") }
func (b *bpftraceTracer) logPath() string { return filepath.Join(b.dir, "bpftrace.log") }

func (b *bpftraceTracer) start(dir string) error {
	b.dir = dir
	out, err := os.Create(b.outPath())
	if err != nil {
		return err
	}
	defer out.Close()
	log, err := os.Create(b.logPath())
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(b.bin, "-e", bpftraceProgram)
	cmd.Stdout, cmd.Stderr = out, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if b.p, err = startProc(cmd); err != nil {
		return err
	}
	// bpftrace says "Attaching N probe..." once it compiled the program;
	// attaching one tracepoint follows within milliseconds.
	attaching := []byte("Attaching ")
	err = b.p.waitReady(daemonReadyTimeout, func() bool {
		o, _ := os.ReadFile(b.outPath())
		l, _ := os.ReadFile(b.logPath())
		return bytes.Contains(o, attaching) || bytes.Contains(l, attaching)
	})
	if err != nil {
		b.p.stop(syscall.SIGKILL, time.Second)
		return fmt.Errorf("%v: %s", err, tail(b.logPath(), 500))
	}
	time.Sleep(500 * time.Millisecond)
	b.cpuBase, _ = procTimes(b.p.pid())
	return nil
}

func (b *bpftraceTracer) stop(port int) (tracerRun, error) {
	skipped, _ := bpfRecursionMisses(b.p.pid())
	stopErr := b.p.stop(os.Interrupt, daemonStopTimeout)
	u := b.p.usage()
	run := newTracerRun(u.cpu.minus(b.cpuBase), b.outPath())
	run.peakRSSKiB, run.lostKnown, run.skipped = u.maxRSSKiB, true, skipped
	var exitErr *exec.ExitError
	if stopErr != nil && !errors.As(stopErr, &exitErr) {
		return run, stopErr
	}
	c, err := countFile(b.outPath(), port, countBpftraceEvents)
	run.events, run.lost, run.churn = c.events, c.lost, c.churn
	return run, err
}
