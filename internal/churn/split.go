package churn

import (
	"fmt"
	"time"
)

// A churn split over processes: servers in some, clients in others, so
// that a tracer's owner of every socket can be checked against the process
// that really holds it (cmd/tcpchurn's --processes).

// quietAfterStop: a server told to stop keeps serving until it has closed
// every connection it accepted and none came for this long (the clients
// have finished by then: only their last connections are still queued).
const quietAfterStop = 100 * time.Millisecond

// Serve runs cfg.Servers raw server workers on cfg.ServerPort (SO_REUSEPORT:
// other processes serve the same port) and calls ready once they listen.
// After stop is closed it serves until every accepted connection is closed
// and none was accepted for quietAfterStop (at most cfg.DrainTimeout), and
// returns the server side of a Result.
func Serve(cfg Config, ready func(port int), stop <-chan struct{}) (Result, error) {
	if cfg.Mode != Raw || cfg.ServerPort == 0 {
		return Result{}, fmt.Errorf("a server process needs raw mode and a fixed port")
	}
	var count counters
	srv, err := serve(&cfg, &count)
	if err != nil {
		return Result{}, err
	}
	port := srv.port
	ready(port)
	<-stop
	deadline := time.Now().Add(cfg.drainTimeout())
	last, since := count.accepted.Load(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		if a := count.accepted.Load(); a != last {
			last, since = a, time.Now()
		}
		if last == count.closed.Load()+count.resets.Load() && time.Since(since) >= quietAfterStop {
			break
		}
	}
	srv.shutdown()
	r := Result{Accepted: count.accepted.Load(), ServerClosed: count.closed.Load(),
		ServerResets: count.resets.Load(), ServerPort: port, Mode: cfg.Mode, Servers: cfg.Servers}
	if err := count.serverError(); err != nil {
		return r, fmt.Errorf("server: %w", err)
	}
	return r, nil
}

// Clients runs cfg.Clients client workers for cfg.Duration against
// cfg.ServerPort; worker k uses the sources first+k, first+k+stride, ...
// (stride: the workers of every client process together).
func Clients(cfg Config, first, stride int) (Result, error) {
	if err := cfg.check(); err != nil {
		return Result{}, err
	}
	if stride < cfg.Clients || first < 0 {
		return Result{}, fmt.Errorf("stride %d below the %d workers", stride, cfg.Clients)
	}
	var count counters
	elapsed := runClients(&cfg, cfg.ServerPort, first, stride, &count)
	r := Result{Connections: count.completed.Load(), Failed: count.failed.Load(),
		Seconds: elapsed, ServerPort: cfg.ServerPort, Mode: cfg.Mode,
		Clients: cfg.Clients, FirstError: count.firstError()}
	if r.Seconds > 0 {
		r.Rate = float64(r.Connections) / r.Seconds
	}
	return r, nil
}
