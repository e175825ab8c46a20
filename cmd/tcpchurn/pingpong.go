package main

import (
	"flag"

	"github.com/tcpstated/tcpstated/internal/churn"
)

func runPingPong(args []string) error {
	fs := flag.NewFlagSet("pingpong", flag.ExitOnError)
	conns := fs.Int("connections", 64, "established connections, each with one round trip in flight")
	port := fs.Int("server-port", 0, "server port on 127.0.0.1 (0: the kernel picks)")
	d := fs.Duration("duration", 10e9, "how long the round trips run (set-up and close are not counted)")
	fs.Parse(args)
	r, err := churn.PingPong(*conns, *port, *d)
	if r.RoundTrips > 0 {
		if perr := printJSON(r); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}
