package churn

import (
	"context"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// clientConfig is what every client worker of a run shares.
type clientConfig struct {
	port    int
	stride  int // number of workers: worker i uses sources i, i+stride, ...
	sources int
	payload []byte
	linger  int // seconds; 0: SO_LINGER off
	// interval between one worker's connects (0: none), from Config.Rate
	interval time.Duration
}

// pacer spaces one worker's connects interval apart. A worker that falls
// more than a second behind starts over rather than bursting to catch up.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func (p *pacer) wait() {
	if p.interval == 0 {
		return
	}
	now := time.Now()
	if p.next.IsZero() || now.Sub(p.next) > time.Second {
		p.next = now
	}
	if d := p.next.Sub(now); d > 0 {
		time.Sleep(d)
	}
	p.next = p.next.Add(p.interval)
}

// failurePause keeps a client that cannot connect (server gone, ports
// exhausted) from spinning and starving the run it is measuring.
const failurePause = time.Millisecond

// rawClient is one client thread: connect, optionally write, close first,
// repeat, with plain blocking syscalls. On loopback a blocking connect
// returns once the whole handshake ran in this thread's softirq, so one
// thread per CPU keeps the kernel busy with no scheduler in between.
func rawClient(first int, cfg clientConfig, stop *atomic.Bool, count *counters) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pace := pacer{interval: cfg.interval}
	for i := first; !stop.Load(); i += cfg.stride {
		pace.wait()
		fd, err := Dial(SourceAddr(i%cfg.sources), cfg.port)
		if err != nil {
			count.fail(err)
			time.Sleep(failurePause)
			continue
		}
		if len(cfg.payload) > 0 {
			unix.Write(fd, cfg.payload)
		}
		if cfg.linger > 0 {
			unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(cfg.linger)})
		}
		unix.Close(fd) // client closes first: ESTABLISHED -> FIN_WAIT1
		count.completed.Add(1)
	}
}

// netClient is the same loop through the net package (non-blocking
// sockets and the runtime's netpoller), for comparison.
func netClient(first int, cfg clientConfig, stop *atomic.Bool, count *counters) {
	dst := net.JoinHostPort(net.IP(ServerAddr[:]).String(), strconv.Itoa(cfg.port))
	pace := pacer{interval: cfg.interval}
	for i := first; !stop.Load(); i += cfg.stride {
		pace.wait()
		src := SourceAddr(i % cfg.sources)
		d := net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.IP(src[:])},
			Control:   bindAddressNoPort,
		}
		d.SetMultipathTCP(false)
		c, err := d.DialContext(context.Background(), "tcp4", dst)
		if err != nil {
			count.fail(err)
			time.Sleep(failurePause)
			continue
		}
		if len(cfg.payload) > 0 {
			c.Write(cfg.payload)
		}
		if cfg.linger > 0 {
			c.(*net.TCPConn).SetLinger(cfg.linger)
		}
		c.Close()
		count.completed.Add(1)
	}
}

// bindAddressNoPort runs before the Dialer's bind; see Dial for why.
func bindAddressNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
