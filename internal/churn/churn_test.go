package churn

import (
	"math"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSourceAddrSpreadsOverLoopback(t *testing.T) {
	cases := map[int][4]byte{
		0:              {127, 1, 0, 0},
		1:              {127, 1, 0, 1},
		256:            {127, 1, 1, 0},
		1 << 16:        {127, 2, 0, 0},
		MaxSources - 1: {127, 254, 255, 255},
		MaxSources:     {127, 1, 0, 0}, // wraps, never reaching 127.255.x.x
	}
	for i, want := range cases {
		if got := SourceAddr(i); got != want {
			t.Errorf("SourceAddr(%d) = %v, want %v", i, got, want)
		}
	}
}

// Every connection a run counts must have been closed by the client first
// and then by the server after EOF, in both modes.
func TestRunCountsEveryConnectionOnBothSides(t *testing.T) {
	for _, mode := range []Mode{Raw, Net} {
		t.Run(string(mode), func(t *testing.T) {
			r, err := Run(Config{Duration: 300 * time.Millisecond, Clients: 2, Servers: 2,
				Sources: 1 << 10, WriteBytes: 1, Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			if r.Connections == 0 || r.Failed != 0 {
				t.Fatalf("connections %d, failed %d (%s)", r.Connections, r.Failed, r.FirstError)
			}
			if r.Accepted != r.Connections || r.ServerClosed != r.Connections || r.ServerResets != 0 {
				t.Fatalf("clients completed %d, server accepted %d, closed %d, resets %d",
					r.Connections, r.Accepted, r.ServerClosed, r.ServerResets)
			}
			if r.Rate <= 0 || r.Seconds < 0.3 {
				t.Fatalf("rate %f over %f s", r.Rate, r.Seconds)
			}
		})
	}
}

// A paced run never goes faster than its rate: each worker's first
// connect is at once, the rest an interval apart.
func TestRateCapsConnections(t *testing.T) {
	const rate, clients = 100.0, 2
	r, err := Run(Config{Duration: 500 * time.Millisecond, Clients: clients, Servers: 1,
		Sources: 16, Mode: Raw, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	if most := int64(rate*r.Seconds) + clients; r.Connections == 0 || r.Connections > most {
		t.Fatalf("%d connections in %.2f s at %v/s (at most %d)", r.Connections, r.Seconds, rate, most)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, c := range []Config{
		{Duration: 0, Clients: 1, Servers: 1, Sources: 1, Mode: Raw},
		{Duration: time.Second, Clients: 0, Servers: 1, Sources: 1, Mode: Raw},
		{Duration: time.Second, Clients: 1, Servers: 1, Sources: 0, Mode: Raw},
		{Duration: time.Second, Clients: 1, Servers: 1, Sources: 1, Mode: "fast"},
		{Duration: time.Second, Clients: 1, Servers: 1, Sources: 1, Mode: Raw, Rate: -1},
		{Duration: time.Second, Clients: 1, Servers: 1, Sources: 1, Mode: Raw, Rate: math.Inf(1)},
	} {
		if _, err := Run(c); err == nil {
			t.Errorf("Run(%+v) accepted a bad config", c)
		}
	}
}

func TestHoldKeepsConnectionsEstablished(t *testing.T) {
	h, err := Hold(50, []int{0, 0}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Connections() != 50 || len(h.servers) != 50 || len(h.Ports) != 2 {
		t.Fatalf("held %d clients, %d servers on %v", h.Connections(), len(h.servers), h.Ports)
	}
}

// Servers and clients apart, as tcpchurn --processes runs them (here in
// one process): two servers share the port, and after stop they close
// every connection the clients completed.
func TestServeAndClientsApart(t *testing.T) {
	fd, port, err := Listen(0, true, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd) // a free port for the servers to share
	cfg := Config{Duration: 300 * time.Millisecond, Clients: 2, Servers: 1, ServerPort: port,
		Sources: 1 << 10, Mode: Raw}
	stop := make(chan struct{})
	type served struct {
		r   Result
		err error
	}
	done := make(chan served, 2)
	for range 2 {
		ready := make(chan struct{})
		go func() {
			r, err := Serve(cfg, func(int) { close(ready) }, stop)
			done <- served{r, err}
		}()
		<-ready
	}
	c, err := Clients(cfg, 0, 2)
	if err != nil || c.Connections == 0 || c.Failed != 0 {
		t.Fatalf("clients: %+v, %v", c, err)
	}
	close(stop)
	var accepted, closed int64
	for range 2 {
		s := <-done
		if s.err != nil {
			t.Fatal(s.err)
		}
		accepted, closed = accepted+s.r.Accepted, closed+s.r.ServerClosed
	}
	if accepted != c.Connections || closed != c.Connections {
		t.Fatalf("clients completed %d, servers accepted %d and closed %d", c.Connections, accepted, closed)
	}
}
