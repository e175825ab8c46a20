// Command bench measures what tracing costs: loopback connection churn
// without a tracer, with tcpstated and with a bpftrace one-liner, in
// alternating pairs, then tcpstated's memory with 100k live connections.
// It prints a markdown report, writes it into docs/performance.md, and
// exits non-zero when tcpstated misses a target.
//
// Run it as root from the repository root: go run ./bench
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

const bpfStatsSysctl = "/proc/sys/kernel/bpf_stats_enabled"

// enableBPFStats turns kernel.bpf_stats_enabled on and returns what puts
// the old value back.
func enableBPFStats() (func(), error) {
	old, err := os.ReadFile(bpfStatsSysctl)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(bpfStatsSysctl, []byte("1"), 0o644); err != nil {
		return nil, err
	}
	return func() { os.WriteFile(bpfStatsSysctl, old, 0o644) }, nil
}

func main() {
	var (
		pairs        = flag.Int("pairs", 5, "alternating pairs of runs (each: no tracer, tcpstated, bpftrace)")
		duration     = flag.Duration("duration", 15*time.Second, "length of each churn run")
		warmup       = flag.Duration("warmup", 3*time.Second, "untraced churn first, not measured (0: none)")
		daemon       = flag.String("daemon", "bin/tcpstated", "tcpstated binary")
		churnBin     = flag.String("churn", "", "tcpchurn binary (empty: go build ./cmd/tcpchurn)")
		out          = flag.String("out", "docs/performance.md", "document to write the results into (empty: none)")
		skipBpftrace = flag.Bool("skip-bpftrace", false, "no bpftrace runs")
		skipDaemon   = flag.Bool("skip-tcpstated", false, "no tcpstated runs (to try the driver without a daemon)")
		skipHold     = flag.Bool("skip-hold", false, "no 100k-live-connections scenario")
		holdCount    = flag.Int("hold-count", 50000, "connections in the hold scenario (both ends are on this host: 100k live sockets)")
		holdSettle   = flag.Duration("hold-settle", 10*time.Second, "wait after the hold is established before reading the daemon's memory")
		clients      = flag.Int("clients", 4, "tcpchurn --clients")
		servers      = flag.Int("servers", 2, "tcpchurn --servers")
		port         = flag.Int("server-port", 21212, "churn server port (outside the ephemeral range, so only churn connections use it)")
		keep         = flag.Bool("keep", false, "keep the event files and logs")
		soak         = flag.Duration("soak", 0, "instead of the churn and the hold: one tcpstated under paced churn this long, sampled for growth (make bench-soak)")
		soakRate     = flag.Float64("soak-rate", 1000, "connections per second in the soak")
		soakEvery    = flag.Duration("soak-every", 30*time.Second, "between the soak's samples and event-file rotations")
		quiet        = flag.Bool("quiet", false, "instead of the churn and the hold: tcpstated on an idle host, then ping-pong pairs without and with it (make bench-quiet)")
		idle         = flag.Duration("idle", 30*time.Second, "the idle measurement of --quiet")
		pingpong     = flag.Duration("pingpong", 10*time.Second, "each ping-pong run of --quiet (pairs: --pairs)")
		variants     variantFlag
	)
	flag.Var(&variants, "variant", "another tcpstated run in every pair, NAME=FLAGS, e.g. 'no timewait=--disable-feature=timewait'; repeatable")
	flag.Var(binaryVariants{&variants}, "variant-bin", "another tcpstated binary run in every pair, NAME=PATH, e.g. 'before=/tmp/old/bin/tcpstated' (side-by-side A/B of a change); repeatable")
	flag.Parse()
	if err := run(config{*pairs, *duration, *warmup, *daemon, *churnBin, *out, *skipBpftrace, *skipDaemon,
		*skipHold, *holdCount, *holdSettle, *clients, *servers, *port, *keep, variants,
		soakConfig{*soak, *soakEvery, *soakRate, *port}, *quiet,
		quietConfig{*idle, *pingpong, *pairs, 64, *port}}); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	pairs                              int
	duration, warmup                   time.Duration
	daemon, churnBin, out              string
	skipBpftrace, skipDaemon, skipHold bool
	holdCount                          int
	holdSettle                         time.Duration
	clients, servers, port             int
	keep                               bool
	variants                           variantFlag
	soak                               soakConfig
	quietOnly                          bool
	quiet                              quietConfig
}

// variantFlag is tcpstated with other flags, measured beside the default.
type variantFlag []daemonTracer

func (v *variantFlag) String() string { return fmt.Sprint(len(*v)) }

func (v *variantFlag) Set(s string) error {
	name, flags, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, "|\n") {
		return fmt.Errorf("want NAME=FLAGS, not %q", s)
	}
	*v = append(*v, daemonTracer{label: "tcpstated (" + strings.TrimSpace(name) + ")", args: strings.Fields(flags)})
	return nil
}

// binaryVariants adds variants that run another binary with the default
// flags.
type binaryVariants struct{ v *variantFlag }

func (b binaryVariants) String() string { return "" }

func (b binaryVariants) Set(s string) error {
	name, path, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, "|\n") || path == "" {
		return fmt.Errorf("want NAME=PATH, not %q", s)
	}
	abs, err := filepath.Abs(path)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		return fmt.Errorf("variant binary: %w", err)
	}
	*b.v = append(*b.v, daemonTracer{label: "tcpstated (" + strings.TrimSpace(name) + ")", bin: abs})
	return nil
}

var errTargetsMissed = errors.New("targets missed (see the report)")

// tracerSettle is the wait between the end of a churn run and stopping its
// tracer.
const tracerSettle = time.Second

func run(cfg config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root: tracers load BPF programs (run with sudo)")
	}
	// Our own SIGINT handler also means children start with SIGINT at its
	// default action, even when this process was started with it ignored
	// (a background job of a non-interactive shell), so SIGINT stops them.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)

	tmp, err := os.MkdirTemp("", "tcpstated-bench-")
	if err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(tmp)
	} else {
		fmt.Fprintln(os.Stderr, "bench: files kept in", tmp)
	}
	if cfg.churnBin == "" {
		cfg.churnBin = filepath.Join(tmp, "tcpchurn")
		build := exec.Command("go", "build", "-o", cfg.churnBin, "./cmd/tcpchurn")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building tcpchurn: %w", err)
		}
	}

	switch {
	case cfg.soak.duration > 0 && cfg.quietOnly:
		return fmt.Errorf("--soak and --quiet are separate benches")
	case cfg.soak.duration > 0:
		return runSoakBench(cfg, tmp, sig)
	case cfg.quietOnly:
		if cfg.quiet.idle <= 0 || cfg.quiet.pingpong <= 0 || cfg.quiet.pairs < 1 {
			return fmt.Errorf("--idle and --pingpong must be positive, --pairs at least 1")
		}
		return runQuietBench(cfg, tmp)
	}
	var tracers []tracer
	daemonBin, bpftraceBin := "", ""
	if !cfg.skipDaemon {
		if daemonBin, err = filepath.Abs(cfg.daemon); err == nil {
			_, err = os.Stat(daemonBin)
		}
		if err != nil {
			return fmt.Errorf("tcpstated binary: %w (make build, or --daemon PATH)", err)
		}
		tracers = append(tracers, &daemonTracer{bin: daemonBin})
		for i := range cfg.variants {
			v := cfg.variants[i]
			if v.bin == "" {
				v.bin = daemonBin
			}
			tracers = append(tracers, &v)
		}
	}
	if !cfg.skipBpftrace {
		if bpftraceBin, err = exec.LookPath("bpftrace"); err != nil {
			return fmt.Errorf("bpftrace not found (apt-get install bpftrace, or --skip-bpftrace)")
		}
		if err := ensureTracefs(); err != nil {
			return err
		}
		tracers = append(tracers, &bpftraceTracer{bin: bpftraceBin})
	}

	b := &bench{
		machine: describeMachine(daemonBin, bpftraceBin),
		churn:   churnConfig{bin: cfg.churnBin, duration: cfg.duration, clients: cfg.clients, servers: cfg.servers, port: cfg.port},
		pairs:   cfg.pairs,
		tracers: []string{"none"},
	}
	for _, t := range tracers {
		b.tracers = append(b.tracers, t.name())
	}
	// BPF run time per program is counted only while this is on; it costs
	// a few tens of ns per run, the same for every tracer.
	if restore, err := enableBPFStats(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: warning: BPF run time not measured: %v\n", err)
	} else {
		defer restore()
	}
	if b.machine.busyPct > 10 || len(b.machine.otherBPF) > 0 {
		fmt.Fprintf(os.Stderr, "bench: warning: machine %.0f%% busy, BPF programs held by %v: rates will be low and noisy\n",
			b.machine.busyPct, b.machine.otherBPF)
	}

	interrupted := func() bool {
		select {
		case s := <-sig:
			fmt.Fprintln(os.Stderr, "bench: stopping on", s)
			return true
		default:
			return false
		}
	}
	if b.pairs > 0 && !interrupted() {
		pc := probePageCache(tmp)
		b.pageCache = &pc
	}
	// Memory first, before the churn leaves a full TIME_WAIT table behind:
	// the target is about live connections, and at start-up the daemon
	// takes in every TIME_WAIT socket it finds.
	if !cfg.skipHold && !cfg.skipDaemon && !interrupted() {
		if n, waited := waitTimeWaitDrain(70 * time.Second); waited > time.Second {
			fmt.Fprintf(os.Stderr, "bench: waited %s for TIME_WAIT sockets to expire (%d left)\n", waited.Round(time.Second), n)
		}
		fmt.Fprintf(os.Stderr, "bench: holding %d connections under tcpstated\n", cfg.holdCount)
		dir := filepath.Join(tmp, "hold")
		os.Mkdir(dir, 0o755)
		h := runHold(cfg.churnBin, daemonBin, dir, cfg.holdCount, cfg.holdSettle)
		b.hold, b.holdSize = &h, cfg.holdCount
	}
	if cfg.warmup > 0 {
		// The first run after a quiet spell meets an empty TIME_WAIT table;
		// the measured ones all start with it full.
		w := b.churn
		w.duration = cfg.warmup
		if _, err := w.run(); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		// And one full run per tracer, thrown away: the first gigabyte
		// of event file meets page-cache pages the hypervisor has never
		// backed, several times slower to write than the ones after.
		// A tracer that fails here is said and the bench goes on: its
		// measured runs say again whether it works.
		for _, t := range tracers {
			if r := b.runOnce(0, t, tmp, false); r.err != nil {
				fmt.Fprintf(os.Stderr, "bench: warm-up with %s failed: %s\n", t.name(), oneLine(r.err.Error()))
			}
		}
	}
	for pair := 1; pair <= cfg.pairs; pair++ {
		order := append([]tracer{nil}, tracers...)
		if pair%2 == 0 {
			slices.Reverse(order) // alternate, so drift favours no tracer
		}
		for _, t := range order {
			if interrupted() {
				return fmt.Errorf("interrupted")
			}
			r := b.runOnce(pair, t, tmp, cfg.keep)
			b.runs = append(b.runs, r)
			progress(r)
		}
	}

	var md bytes.Buffer
	b.markdown(&md)
	os.Stdout.Write(md.Bytes())
	if cfg.out != "" {
		if err := writeDoc(cfg.out, "results", md.String()); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "bench: results written to", cfg.out)
	}
	if !b.passed() {
		return errTargetsMissed
	}
	return nil
}

// runOnce makes one churn run under t (nil: no tracer).
func (b *bench) runOnce(pair int, t tracer, tmp string, keep bool) runResult {
	r := runResult{pair: pair, tracer: "none"}
	if t == nil {
		r.churn, r.otherPct, r.err = b.measuredChurn(nil)
		return r
	}
	r.tracer = t.name()
	dir := filepath.Join(tmp, fmt.Sprintf("pair%d-%s", pair, t.name()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		r.err = err
		return r
	}
	if !keep {
		defer os.RemoveAll(dir) // event files run to gigabytes
	}
	if r.err = t.start(dir); r.err != nil {
		return r
	}
	progs0, _ := bpfPrograms(t.pid())
	r.churn, r.otherPct, r.err = b.measuredChurn(t)
	// The last connections' final ACKs are still in flight when tcpchurn
	// returns: a tracer stopped at once would miss their last transitions.
	time.Sleep(tracerSettle)
	progs1, _ := bpfPrograms(t.pid())
	if o, ok := t.(interface{ expectOwners(client, server []int) }); ok {
		o.expectOwners(r.churn.ClientPids, r.churn.ServerPids)
	}
	run, err := t.stop(b.churn.port)
	run.programs = progDelta(progs0, progs1)
	run.bpfNs = bpfNsOf(run.programs)
	r.trace = &run
	if r.err == nil {
		r.err = err
	}
	return r
}

// measuredChurn runs the churn and works out how much of the machine's
// CPU went to neither tcpchurn nor the tracer meanwhile.
func (b *bench) measuredChurn(t tracer) (churnResult, float64, error) {
	tracerCPU := func() float64 {
		if t == nil {
			return 0
		}
		return t.cpuSeconds()
	}
	busy0, total0 := cpuTicks()
	tr0 := tracerCPU()
	r, err := b.churn.run()
	tr1 := tracerCPU()
	busy1, total1 := cpuTicks()
	if total1 == total0 {
		return r, 0, err
	}
	other := float64(busy1-busy0)/userHZ - r.cpuSeconds - (tr1 - tr0)
	return r, max(0, 100*other*userHZ/float64(total1-total0)), err
}

func progress(r runResult) {
	line := fmt.Sprintf("bench: pair %d %-9s %8.0f conn/s  other load %4.1f%%", r.pair, r.tracer, r.churn.Rate, r.otherPct)
	if r.trace != nil {
		line += fmt.Sprintf("  events %d/%d  lost %d  skipped %d  cpu %.2fs  bpf %.0f+%.0f ns/event  rss %.1f MiB",
			r.delivered(), r.expected(), r.trace.lost, r.trace.skipped, r.trace.cpuSeconds,
			r.bpfPerEvent(), r.cpuPerEvent(), float64(r.trace.peakRSSKiB)/1024)
	}
	if r.err != nil {
		line += "  error: " + oneLine(r.err.Error())
	}
	fmt.Fprintln(os.Stderr, line)
}
