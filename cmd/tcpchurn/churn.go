package main

import (
	"flag"
	"runtime"

	"github.com/tcpstated/tcpstated/internal/churn"
)

func runChurn(args []string) error {
	fs := flag.NewFlagSet("churn", flag.ExitOnError)
	cfg := churn.Config{Mode: churn.Raw}
	fs.DurationVar(&cfg.Duration, "duration", 10e9, "how long the clients run")
	fs.IntVar(&cfg.Clients, "clients", 4, "client workers (OS threads in raw mode, goroutines in net mode)")
	fs.IntVar(&cfg.Servers, "servers", 2, "server workers (raw: threads, each with its own SO_REUSEPORT listener; net: accept goroutines)")
	fs.IntVar(&cfg.ServerPort, "server-port", 0, "server port on 127.0.0.1 (0: the kernel picks; see the result's server_port)")
	fs.IntVar(&cfg.Sources, "sources", 1<<16, "distinct 127.x.y.z client source addresses")
	fs.IntVar(&cfg.WriteBytes, "write", 0, "bytes each client writes before it closes")
	fs.IntVar(&cfg.LingerSeconds, "linger", 0, "SO_LINGER seconds on client sockets, so close waits for the FIN's ACK (0: off; an RST close is never used)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "connections per second of all clients together (0: as fast as they go)")
	mode := fs.String("mode", string(churn.Raw), "raw (x/sys/unix syscalls on locked threads) or net (net package)")
	procs := fs.Int("gomaxprocs", 0, "GOMAXPROCS (0: raw mode: one per worker thread and one spare; net mode: the runtime's default)")
	split := fs.Bool("processes", false, "one process per client and per server worker (raw mode, --server-port needed), their pids in the result, so that a tracer's owners can be checked")
	fs.Parse(args)
	if *split {
		return runSplit(cfg, *mode)
	}
	cfg.Mode = churn.Mode(*mode)
	if *procs == 0 && cfg.Mode == churn.Raw {
		// Each raw worker is a locked OS thread that spends most of its
		// time in system calls long enough (a loopback connect runs the
		// whole handshake) for the runtime to hand its P to another
		// thread; with a P per worker, none ever waits for one on its way
		// back. (Measured: no loss per CPU-second at 2 Ps either; this is
		// a safeguard, see docs/performance.md.)
		*procs = max(runtime.GOMAXPROCS(0), cfg.Clients+cfg.Servers+1)
	}
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	res, err := churn.Run(cfg)
	if res.ServerPort != 0 {
		// Print even a failed run's counts: they tell what went wrong.
		if perr := printJSON(res); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}
