package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/daemon"
	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/sink"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

// DefaultListen is loopback only, and serves metrics and health alone: the
// socket table is on the API socket, where each user sees their own.
const DefaultListen = "127.0.0.1:9932"

// DefaultSocket is the API socket, and where the clients look first.
const DefaultSocket = "/run/tcpstated/api.sock"

// DefaultGroup is the group whose members see every socket; it may not
// exist, and then only root does.
const DefaultGroup = "tcpstated"

func cmdRun(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var (
		sinks    listFlag
		states   statesFlag
		family   familyFlag
		port     portFlag
		pid      pidFlag
		disabled featuresFlag
		ring     = sizeFlag(events.DefaultRingBytes)
		format   = fs.String("format", "auto", "event format: json (one object per line), text (aligned), or auto: text on a terminal, json otherwise")
		ready    = fs.String("ready-file", "", "write this file (pid and API address, JSON) once tracing has started")
		listen   = fs.String("listen", DefaultListen, "network address for /metrics and /healthz (and /api/v1 with --listen-api); \"off\" to disable")
		webConf  = fs.String("web.config.file", "", "TLS and authentication for --listen: the Prometheus exporter toolkit's web configuration file (tls_server_config, basic_auth_users)")
		listAPI  = fs.Bool("listen-api", false, "serve the socket table (/api/v1) on --listen too; needs TLS and authentication from --web.config.file")
		insecure = fs.Bool("allow-unauthenticated-listen", false, "let --listen serve beyond loopback, or serve /api/v1, without TLS and authentication: anyone who can connect reads what it serves")
		apiSock  = fs.String("api-socket", DefaultSocket, "unix socket serving /api/v1, /metrics and /healthz: everything to root and --api-group, only their own processes' sockets to other users; \"off\" to disable")
		apiGroup = fs.String("api-group", DefaultGroup, "group (name or gid) whose members see every socket on --api-socket")
		logLevel = fs.String("log-level", "info", "diagnostics on stderr: debug, info, warn, error")
		maxSocks = fs.Int("max-sockets", 262144, "live socket table size; sockets past it are not tracked (counted)")
		maxTW    = fs.Int("max-timewait", 0, "timewait sockets followed in the kernel (0: net.ipv4.tcp_max_tw_buckets)")
		maxProcs = fs.Int("max-processes", 4096, "processes with per-process accounting; idle ones are evicted past it")
		maxComms = fs.Int("max-comms", 256, "distinct comm label values in metrics; the rest count as \"other\"")
		maxPeers = fs.Int("max-peers", 256, "distinct peer label values in the connection metrics; the rest count as \"other\"")
		queue    = fs.Int("queue-len", 32768, "events queued per sink before that sink drops (counted); 512 bytes each, outside the Go heap and touched only as the queue fills")
		cwLimit  = durationFlag(fs, "close-wait-threshold", 60*time.Second, "CLOSE_WAIT older than this is reported as a leak (0: never)")
		fw1Limit = durationFlag(fs, "fin-wait1-threshold", 60*time.Second, "FIN_WAIT1 older than this is reported as stuck (0: never)")
		fw2Limit = durationFlag(fs, "fin-wait2-threshold", 60*time.Second, "FIN_WAIT2 older than this is reported as stuck (0: never)")
		twShare  = fs.Float64("time-wait-share", 0.5, "report time_wait_pressure when one process holds this share of the ephemeral port range in TIME_WAIT towards one peer")
		pollIv   = durationFlag(fs, "poll-interval", 50*time.Millisecond, "longest wait before queued events are read (the kernel wakes the reader sooner under load)")
		scanIv   = durationFlag(fs, "scan-interval", 10*time.Second, "how often file tables are walked to refresh owners and descriptors")
		memLimit = sizeFlag(48 << 20)
		fcache   = int64(sink.DefaultFileCache) // sink.Options.FileCache: negative leaves the page cache alone
		ownAPI   = fs.Bool("trace-own-api", false, "keep connections to this daemon's own --listen address (scrapes, tcpstated sockets and top) in the stream")
		oldEnds  = fs.Bool("stream-preexisting-ends", false, "stream the ends of TIME_WAITs that existed before the daemon started (by default their rows end without an event)")
		nice     = fs.Int("nice", -5, "scheduling priority of the daemon's threads, -20 to 19 (0: leave as started): above its fair share so it keeps up with a busy host; needs CAP_SYS_NICE below the starting value")
	)
	fs.Var(&sinks, "sink", "where events go, repeatable: stdout, stderr, file:/path, tcp://host:port, tls://host:port, unix:///path, syslog://host[:port], syslog+tcp://host[:port], syslog+tls://host[:port] (RFC 5425), syslog:///dev/log; TLS options ?ca=&cert=&key=&server_name= (default stdout)")
	fs.Var(&states, "state", "only transitions from or to these states, comma separated or repeated (e.g. CLOSE_WAIT,TIME_WAIT)")
	var classes tracker.Class
	fs.Func("events", "which events to stream, comma separated: transitions, connections (one summary per connection), resets (RSTs sent and received), findings, all (default all; without connections under --state)", func(v string) error {
		c, err := tracker.ParseClasses(v)
		classes = c
		return err
	})
	fs.Var(&family, "family", "only ipv4 or ipv6")
	fs.Var(&port, "port", "only sockets with this local or remote port")
	fs.Var(&pid, "pid", "only sockets owned by this process")
	fs.Var(&ring, "ring-size", "ring buffer size, a power of two (e.g. 8M)")
	fs.Var(&disabled, "disable-feature", "features not to load, comma separated: "+featureList()+" (tcpstated check lists them)")
	fs.Func("file-cache", "how much of the end of a file sink's file stays in the page cache; the pages before it are dropped once written back (default 64M; 0: leave the page cache alone)", func(v string) error {
		if v == "0" {
			fcache = -1
			return nil
		}
		var size sizeFlag
		err := size.Set(v)
		fcache = int64(size)
		return err
	})
	fs.Var(&memLimit, "memory-limit", "soft limit for the Go heap (the GC works harder near it; GOMEMLIMIT in the environment wins)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: tcpstated [run] [flags]\n\nTrace every TCP state change until SIGINT or SIGTERM; SIGHUP reopens file sinks.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}

	lvl, err := zerolog.ParseLevel(*logLevel)
	if err != nil || *logLevel == "" {
		return usageError(fs, "--log-level %q: want debug, info, warn or error", *logLevel)
	}
	log := newLogger(lvl)

	switch *format {
	case "auto":
		*format = "json"
		if len(sinks) == 0 && isatty.IsTerminal(os.Stdout.Fd()) {
			*format = "text"
		}
	case "json", "text":
	default:
		return usageError(fs, "--format %q: want json, text or auto", *format)
	}
	if r := int(ring); r < os.Getpagesize() || r&(r-1) != 0 {
		return usageError(fs, "--ring-size %d: want a power of two of at least %d", r, os.Getpagesize())
	}
	for name, v := range map[string]int{"max-sockets": *maxSocks, "max-processes": *maxProcs, "max-comms": *maxComms, "max-peers": *maxPeers, "queue-len": *queue} {
		if v <= 0 || v > 1<<24 {
			return usageError(fs, "--%s %d: want 1 to %d", name, v, 1<<24)
		}
	}
	if *maxTW < 0 || *maxTW > 1<<24 {
		return usageError(fs, "--max-timewait %d: want 0 to %d", *maxTW, 1<<24)
	}
	if *twShare <= 0 || *twShare > 1 {
		return usageError(fs, "--time-wait-share %v: want a share above 0, at most 1", *twShare)
	}
	for name, v := range map[string]time.Duration{"close-wait-threshold": *cwLimit, "fin-wait1-threshold": *fw1Limit, "fin-wait2-threshold": *fw2Limit} {
		if v < 0 {
			return usageError(fs, "--%s %v: want a duration of 0 or more", name, v)
		}
	}
	if *pollIv < time.Millisecond || *pollIv > 10*time.Second {
		return usageError(fs, "--poll-interval %v: want 1ms to 10s", *pollIv)
	}
	if *scanIv < 100*time.Millisecond {
		return usageError(fs, "--scan-interval %v: want 100ms or more", *scanIv)
	}
	if classes&tracker.ClassConnections != 0 && len(states) > 0 {
		return usageError(fs, "--events connections cannot be combined with --state: the kernel drops transitions that a connection's summary needs")
	}
	if *nice < -20 || *nice > 19 {
		return usageError(fs, "--nice %d: want -20 to 19", *nice)
	}
	// The socket table is most of the heap; collect before it doubles.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(memLimit))
	}
	if *listen == "off" {
		*listen = ""
	}
	if *apiSock == "off" {
		*apiSock = ""
	}
	if *apiSock != "" && (!strings.HasPrefix(*apiSock, "/") || len(*apiSock) > 107) {
		return usageError(fs, "--api-socket %q: want an absolute path of at most 107 bytes, or off", *apiSock)
	}
	if *webConf != "" && *listen == "" {
		return usageError(fs, "--web.config.file secures --listen, which is off")
	}
	if *listAPI && *listen == "" {
		return usageError(fs, "--listen-api serves the API on --listen, which is off")
	}
	if *maxTW == 0 {
		*maxTW = readSysctlInt("/proc/sys/net/ipv4/tcp_max_tw_buckets", events.DefaultMaxTimeWait)
		*maxTW = min(max(*maxTW, 1024), 1<<22)
	}

	if *nice != 0 {
		if err := renice(*nice); err != nil {
			log.Warn().Err(err).Int("nice", *nice).
				Msg("could not raise the daemon's priority (CAP_SYS_NICE, or Nice= in a systemd unit): under load it may fall behind and lose events (counted)")
		}
	}

	opt := daemon.Options{
		Format: *format, Sinks: sinks, ReadyFile: *ready,
		Listen: *listen, WebConfigFile: *webConf, ListenAPI: *listAPI, AllowUnauthenticated: *insecure,
		APISocket: *apiSock, APISocketIsDefault: *apiSock == DefaultSocket,
		APIGroup: *apiGroup, APIGroupIsDefault: *apiGroup == DefaultGroup,
		Filter:      events.Filter{Pid: uint32(pid), Port: uint16(port), Family: events.Family(family), States: states},
		Events:      classes,
		RingBytes:   int(ring),
		MaxTimeWait: *maxTW,
		Disabled:    disabled,

		StreamPreexistingEnds: *oldEnds,
		TraceOwnAPI:           *ownAPI,
		QueueLen:              *queue,
		FileCache:             fcache,
		PollInterval:          *pollIv,
		ScanInterval:          *scanIv,
		Tracker: tracker.Config{
			MaxSockets: *maxSocks, MaxProcesses: *maxProcs, MaxComms: *maxComms, MaxPeers: *maxPeers,
			CloseWaitThreshold: *cwLimit, FinWait1Threshold: *fw1Limit, FinWait2Threshold: *fw2Limit,
			TimeWaitShare: *twShare, PortRange: portRange(),
		},
		Log: log,
	}
	d, err := daemon.Open(opt)
	if err != nil {
		log.Error().Err(err).Msg("cannot start tracing")
		fmt.Fprintf(os.Stderr, "tcpstated: %v\n", err)
		return 1
	}
	defer d.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := d.Reopen(); err != nil {
				log.Error().Err(err).Msg("reopening sinks")
			} else {
				log.Info().Msg("sinks reopened (SIGHUP)")
			}
		}
	}()

	log.Info().Str("format", *format).Strs("sinks", sinks).Msg("tracing TCP state changes")
	sum, err := d.Run(ctx)
	closeErr := d.Close()
	stopped := log.Info().
		Uint64("events", sum.Events).
		Uint64("transitions", sum.Transitions).
		Uint64("records", sum.Records)
	if k := sum.Kernel; k != nil {
		stopped.Uint64("submitted", k.Records).
			Uint64("lost", k.Lost).
			Uint64("skipped", k.RecursionMisses).
			Uint64("nested_recovered", k.NestedRecovered).
			Uints64("lost_per_cpu", k.LostPerCPU)
	} else {
		stopped.Str("kernel_counters", "unreadable")
	}
	stopped.Uint64("decode_errors", sum.DecodeErrors).
		Uint64("sink_dropped", sum.SinkDropped).
		Uint64("socket_table_full", sum.Table.TableFull).
		Msg("tcpstated stopped")
	if err != nil {
		log.Error().Err(err).Msg("tracing failed")
		return 1
	}
	if closeErr != nil {
		log.Error().Err(closeErr).Msg("closing sinks")
	}
	return 0
}

func usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "tcpstated %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fmt.Fprintf(os.Stderr, "Run 'tcpstated %s --help' for usage.\n", fs.Name())
	return 2
}

// newLogger writes diagnostics to stderr: readable on a terminal, JSON
// otherwise (journald, kubectl logs).
func newLogger(lvl zerolog.Level) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	if isatty.IsTerminal(os.Stderr.Fd()) {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"}).Level(lvl).With().Timestamp().Logger()
	}
	return zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Logger()
}

func readSysctlInt(path string, def int) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return def
	}
	return n
}

// portRange is net.ipv4.ip_local_port_range, the ephemeral ports; where
// it cannot be read, none, and the tracker takes the kernel's default.
func portRange() [2]uint16 {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return [2]uint16{}
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return [2]uint16{}
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || lo > hi {
		return [2]uint16{}
	}
	return [2]uint16{uint16(lo), uint16(hi)}
}
