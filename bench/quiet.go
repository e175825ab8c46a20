package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
)

// Beyond the storm: what tcpstated costs a host that is idle, and one
// whose TCP traffic arms timers all the time but changes no state (the
// timer programs run for every kernel timer started or cancelled).

// quietConfig is make bench-quiet.
type quietConfig struct {
	idle     time.Duration // the idle measurement
	pingpong time.Duration // each ping-pong run
	pairs    int
	conns    int
	port     int
}

// progStat is one BPF program's counters (kernel.bpf_stats_enabled).
// An iterator runs in its process's own system calls: its time is in that
// process's CPU already.
type progStat struct {
	runs, ns int64
	iter     bool
}

// plus adds o's counters to s's.
func (s progStat) plus(o progStat) progStat {
	return progStat{s.runs + o.runs, s.ns + o.ns, s.iter || o.iter}
}

// bpfNsOf is the run time of progs but for iterators: what BPF adds to a
// process's own CPU.
func bpfNsOf(progs map[string]progStat) int64 {
	var n int64
	for _, p := range progs {
		if !p.iter {
			n += p.ns
		}
	}
	return n
}

// bpfPrograms reads the run counters of every BPF program pid holds, by
// program name.
func bpfPrograms(pid int) (map[string]progStat, error) {
	out, iters := map[string]progStat{}, iterProgIDs(pid)
	err := eachBPFProg(pid, func(info []byte) {
		id, ok := fdinfoInt(info, "prog_id:")
		if !ok {
			return
		}
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			return
		}
		pi, err := p.Info()
		p.Close()
		if err != nil {
			return
		}
		runs, _ := fdinfoInt(info, "run_cnt:")
		ns, _ := fdinfoInt(info, "run_time_ns:")
		out[pi.Name] = out[pi.Name].plus(progStat{runs, ns, iters[int64(id)]})
	})
	return out, err
}

// progDelta is what each program ran between two readings.
func progDelta(before, after map[string]progStat) map[string]progStat {
	d := map[string]progStat{}
	for name, a := range after {
		b := before[name]
		if a.runs > b.runs {
			d[name] = progStat{a.runs - b.runs, a.ns - b.ns, a.iter}
		}
	}
	return d
}

// quietRun is one measured stretch: with no tracer (daemon nil) or with one.
type quietRun struct {
	pair       int
	traced     bool
	seconds    float64
	roundTrips int64 // ping-pong only
	rate       float64
	daemonCPU  float64 // seconds
	progs      map[string]progStat
	err        error
}

func (q quietRun) bpfNs() int64 { return bpfNsOf(q.progs) }

// measureQuiet runs load (nil: none, for the idle measurement) with a
// tcpstated started for it when traced.
func measureQuiet(daemonBin, dir string, traced bool, load func() (float64, int64, float64, error), idle time.Duration) quietRun {
	r := quietRun{traced: traced}
	var d *daemonTracer
	if traced {
		d = &daemonTracer{bin: daemonBin}
		if r.err = d.start(dir); r.err != nil {
			return r
		}
		defer d.stop(0)
		time.Sleep(2 * time.Second) // start-up scans are not the idle cost
	}
	var p0 map[string]progStat
	var cpu0 float64
	if d != nil {
		p0, _ = bpfPrograms(d.pid())
		cpu0 = d.cpuSeconds()
	}
	start := time.Now()
	if load != nil {
		r.seconds, r.roundTrips, r.rate, r.err = load()
	} else {
		time.Sleep(idle)
		r.seconds = time.Since(start).Seconds()
	}
	if d != nil {
		p1, _ := bpfPrograms(d.pid())
		r.progs = progDelta(p0, p1)
		r.daemonCPU = d.cpuSeconds() - cpu0
		if load == nil {
			r.seconds = time.Since(start).Seconds()
		}
	}
	return r
}

// pingPong runs tcpchurn pingpong once.
func pingPong(churnBin string, cfg quietConfig) (float64, int64, float64, error) {
	cmd := exec.Command(churnBin, "pingpong", "--connections", strconv.Itoa(cfg.conns),
		"--server-port", strconv.Itoa(cfg.port), "--duration", cfg.pingpong.String())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var r struct {
		RoundTrips int64   `json:"round_trips"`
		Seconds    float64 `json:"seconds"`
		Rate       float64 `json:"rate"`
	}
	if jerr := json.Unmarshal(lastLine(out.Bytes()), &r); err == nil && jerr != nil {
		err = jerr
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("tcpchurn pingpong: %v %s", err, strings.TrimSpace(errb.String()))
	}
	return r.Seconds, r.RoundTrips, r.Rate, nil
}

type quietResult struct {
	cfg  quietConfig
	idle quietRun
	runs []quietRun
}

// runQuietBench is make bench-quiet: the idle measurement, then ping-pong
// pairs without and with tcpstated, alternating; its section is written
// into cfg.out.
func runQuietBench(cfg config, tmp string) error {
	daemonBin, err := filepath.Abs(cfg.daemon)
	if err == nil {
		_, err = os.Stat(daemonBin)
	}
	if err != nil {
		return fmt.Errorf("tcpstated binary: %w (make build, or --daemon PATH)", err)
	}
	m := describeMachine(daemonBin, "")
	if restore, err := enableBPFStats(); err != nil {
		return fmt.Errorf("BPF run time cannot be measured: %w", err)
	} else {
		defer restore()
	}
	q := quietResult{cfg: cfg.quiet}
	dir := func(name string) string {
		d := filepath.Join(tmp, name)
		os.Mkdir(d, 0o755)
		return d
	}
	fmt.Fprintf(os.Stderr, "bench: tcpstated on an idle host for %s\n", cfg.quiet.idle)
	q.idle = measureQuiet(daemonBin, dir("idle"), true, nil, cfg.quiet.idle)
	if q.idle.err != nil {
		return q.idle.err
	}
	load := func() (float64, int64, float64, error) { return pingPong(cfg.churnBin, cfg.quiet) }
	for pair := 1; pair <= cfg.quiet.pairs; pair++ {
		order := []bool{false, true}
		if pair%2 == 0 {
			slices.Reverse(order)
		}
		for _, traced := range order {
			r := measureQuiet(daemonBin, dir(fmt.Sprintf("pingpong%d-%v", pair, traced)), traced, load, 0)
			r.pair = pair
			if r.err != nil {
				return r.err
			}
			fmt.Fprintf(os.Stderr, "bench: pingpong pair %d traced %v: %.0f round trips/s\n", pair, traced, r.rate)
			q.runs = append(q.runs, r)
		}
	}
	var md strings.Builder
	q.markdown(&md, m)
	os.Stdout.WriteString(md.String())
	if cfg.out != "" {
		return writeDoc(cfg.out, "quiet", md.String())
	}
	return nil
}
