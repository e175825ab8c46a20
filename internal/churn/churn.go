package churn

import (
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Mode picks how clients and servers talk to the kernel.
type Mode string

const (
	// Raw uses blocking golang.org/x/sys/unix syscalls on locked OS
	// threads (clients) and per-thread epoll loops (servers).
	Raw Mode = "raw"
	// Net uses the net package: non-blocking sockets and the netpoller.
	Net Mode = "net"
)

// Config describes one churn run.
type Config struct {
	Duration   time.Duration
	Clients    int // client workers (threads in Raw mode, goroutines in Net)
	Servers    int // raw: threads, each with its own listener; net: accept goroutines
	ServerPort int // 0: the kernel picks one
	Sources    int // distinct 127.x.y.z client addresses to rotate over
	WriteBytes int // bytes each client writes before closing (0: none)
	// LingerSeconds > 0 sets SO_LINGER on client sockets, so close waits
	// for the FIN to be acknowledged. 0 leaves SO_LINGER off; a zero
	// linger time (close by RST) is never used, since it would skip the
	// four-way close the benchmark counts on.
	LingerSeconds int
	// Rate caps the connections per second of all client workers
	// together (0: as fast as they go), for a soak at moderate churn.
	Rate float64
	Mode Mode // for clients and server alike
	// DrainTimeout bounds the wait, after the clients stop, for the server
	// to close every connection the clients completed.
	DrainTimeout time.Duration
}

// Result is what one run did. The first four fields are the contract with
// the bench driver.
type Result struct {
	Connections int64   `json:"connections"` // client connected and closed first
	Failed      int64   `json:"failed"`      // connect (or socket/bind) failures
	Seconds     float64 `json:"seconds"`     // from the first client start to the last client stop
	Rate        float64 `json:"rate"`        // connections per second

	Accepted     int64  `json:"accepted"`      // server side
	ServerClosed int64  `json:"server_closed"` // server read EOF, then closed
	ServerResets int64  `json:"server_resets"` // server saw an error instead of EOF
	ServerPort   int    `json:"server_port"`
	Mode         Mode   `json:"mode"`
	Clients      int    `json:"clients"`
	Servers      int    `json:"servers"`
	FirstError   string `json:"first_error,omitempty"`
	// With --processes: the processes that own the client and the server
	// sockets, for a tracer's owners to be checked against.
	ClientPids []int `json:"client_pids,omitempty"`
	ServerPids []int `json:"server_pids,omitempty"`
}

func (c *Config) check() error {
	switch {
	case c.Duration <= 0:
		return errors.New("duration must be positive")
	case c.Clients < 1 || c.Servers < 1:
		return errors.New("need at least one client and one server")
	case c.Sources < 1 || c.Sources > MaxSources:
		return fmt.Errorf("sources must be within 1..%d", MaxSources)
	case c.LingerSeconds < 0:
		return errors.New("linger must not be negative")
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return errors.New("rate must be a finite number, 0 or more")
	case c.Mode != Raw && c.Mode != Net:
		return fmt.Errorf("unknown mode %q (raw or net)", c.Mode)
	}
	return nil
}

// Run starts the server, runs the clients for cfg.Duration, waits for the
// server to close every connection the clients completed, and reports.
// Every connection it counts went through exactly the ten kernel state
// changes of a client-closes-first connection.
func Run(cfg Config) (Result, error) {
	if err := cfg.check(); err != nil {
		return Result{}, err
	}
	var count counters
	srv, err := serve(&cfg, &count)
	if err != nil {
		return Result{}, err
	}
	port := srv.port

	elapsed := runClients(&cfg, port, 0, cfg.Clients, &count)

	// The tracer counts server-side transitions too: leave only when the
	// server has closed every connection the clients completed.
	deadline := time.Now().Add(cfg.drainTimeout())
	for count.closed.Load()+count.resets.Load() < count.completed.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	srv.shutdown()

	r := Result{
		Connections:  count.completed.Load(),
		Failed:       count.failed.Load(),
		Seconds:      elapsed,
		Accepted:     count.accepted.Load(),
		ServerClosed: count.closed.Load(),
		ServerResets: count.resets.Load(),
		ServerPort:   port,
		Mode:         cfg.Mode,
		Clients:      cfg.Clients,
		Servers:      cfg.Servers,
		FirstError:   count.firstError(),
	}
	if elapsed > 0 {
		r.Rate = float64(r.Connections) / elapsed
	}
	if err := count.serverError(); err != nil {
		return r, fmt.Errorf("server: %w", err)
	}
	if r.ServerClosed != r.Connections {
		return r, fmt.Errorf("server closed %d connections after EOF, clients completed %d",
			r.ServerClosed, r.Connections)
	}
	return r, nil
}

// drainTimeout is cfg.DrainTimeout, 10 s when unset.
func (c *Config) drainTimeout() time.Duration {
	if c.DrainTimeout == 0 {
		return 10 * time.Second
	}
	return c.DrainTimeout
}

// server is a run's server workers, started by serve.
type server struct {
	port  int
	stop  atomic.Bool
	wg    sync.WaitGroup
	close func() // closes the listeners once the workers stopped
}

// serve starts cfg.Servers server workers counting into count.
func serve(cfg *Config, count *counters) (*server, error) {
	s := &server{}
	var err error
	if s.port, s.close, err = startServer(cfg, count, &s.stop, &s.wg); err != nil {
		return nil, err
	}
	return s, nil
}

// shutdown stops the workers and closes the listeners.
func (s *server) shutdown() {
	s.stop.Store(true)
	s.close()
	s.wg.Wait()
}

// runClients runs cfg.Clients client workers for cfg.Duration; worker k
// uses the sources first+k, first+k+stride, ... It returns the seconds
// from their start to the last one's stop.
func runClients(cfg *Config, port, first, stride int, count *counters) float64 {
	cl := clientConfig{port: port, stride: stride, sources: cfg.Sources,
		payload: make([]byte, cfg.WriteBytes), linger: cfg.LingerSeconds}
	if cfg.Rate > 0 {
		// Each of the stride workers (in every process) takes its share.
		cl.interval = time.Duration(float64(stride) * float64(time.Second) / cfg.Rate)
	}
	client := rawClient
	if cfg.Mode == Net {
		client = netClient
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.AfterFunc(cfg.Duration, func() { stop.Store(true) })
	defer timer.Stop()
	for k := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client(first+k, cl, &stop, count)
		}()
	}
	wg.Wait()
	return time.Since(start).Seconds()
}

// listenBacklog is the accept queue per listener; the kernel caps it at
// net.core.somaxconn.
const listenBacklog = 65535

// startServer starts the server workers and returns the port and a
// function that closes the listeners once the workers are told to stop.
func startServer(cfg *Config, count *counters, stop *atomic.Bool, wg *sync.WaitGroup) (int, func(), error) {
	if cfg.Mode == Net {
		l, err := netListen(cfg.ServerPort)
		if err != nil {
			return 0, nil, err
		}
		for range cfg.Servers {
			wg.Add(1)
			go func() { defer wg.Done(); netServe(l, count, stop) }()
		}
		return l.Addr().(*net.TCPAddr).Port, func() { l.Close() }, nil
	}
	port := cfg.ServerPort
	var fds []int
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	for range cfg.Servers {
		fd, bound, err := Listen(port, true, true, listenBacklog)
		if err != nil {
			closeAll()
			return 0, nil, err
		}
		port = bound // the others share the first one's port
		fds = append(fds, fd)
	}
	for _, fd := range fds {
		s := &rawServer{listenFD: fd, stop: stop, count: count}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.run(); err != nil {
				count.serverFailed(err)
			}
		}()
	}
	// Raw server threads close their listeners' descriptors only after
	// they stopped polling them.
	return port, func() { wg.Wait(); closeAll() }, nil
}
