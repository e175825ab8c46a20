package sink

import (
	"bytes"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"
)

// tlsCollector is a TLS server on loopback for one test. It keeps every
// connection's bytes as they came off the wire, before TLS saw them, to
// show that nothing went out in clear, and what each session that passed
// the handshake carried.
type tlsCollector struct {
	addr string
	ln   net.Listener
	cfg  *tls.Config
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns []*collectorConn
}

// collectorConn is one connection a tlsCollector accepted.
type collectorConn struct {
	raw  net.Conn
	wire lockedBuffer // the bytes as received, encrypted or not
	data lockedBuffer // what the session carried, decrypted
	done chan struct{}

	// Set before done is closed:
	handshake error // nil: the session was set up
	state     tls.ConnectionState
	end       error // why reading stopped; io.EOF after a close_notify
}

// startTLSCollector serves cfg on 127.0.0.1 until the test ends.
func startTLSCollector(t *testing.T, cfg *tls.Config) *tlsCollector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &tlsCollector{addr: ln.Addr().String(), ln: ln, cfg: cfg}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(func() {
		ln.Close()
		c.mu.Lock()
		for _, cc := range c.conns {
			cc.raw.Close()
		}
		c.mu.Unlock()
		c.wg.Wait()
	})
	return c
}

func (c *tlsCollector) accept() {
	defer c.wg.Done()
	for {
		raw, err := c.ln.Accept()
		if err != nil {
			return
		}
		cc := &collectorConn{raw: raw, done: make(chan struct{})}
		c.mu.Lock()
		c.conns = append(c.conns, cc)
		c.mu.Unlock()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			cc.serve(c.cfg)
		}()
	}
}

func (cc *collectorConn) serve(cfg *tls.Config) {
	defer close(cc.done)
	tc := tls.Server(&wireTap{Conn: cc.raw, tap: &cc.wire}, cfg)
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if cc.handshake = tc.Handshake(); cc.handshake != nil {
		return
	}
	tc.SetDeadline(time.Time{})
	cc.state = tc.ConnectionState()
	buf := make([]byte, 32<<10)
	for {
		n, err := tc.Read(buf)
		cc.data.Write(buf[:n])
		if err != nil {
			cc.end = err
			return
		}
	}
}

// connections is a snapshot of the connections accepted so far.
func (c *tlsCollector) connections() []*collectorConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*collectorConn(nil), c.conns...)
}

// checkNothingInClear fails the test if a connection began with anything
// but a TLS handshake record (content type 0x16, version 3.x), or if
// marker, a piece of every event sent, shows in its bytes on the wire.
func (c *tlsCollector) checkNothingInClear(t *testing.T, marker string) {
	t.Helper()
	for i, cc := range c.connections() {
		wire := []byte(cc.wire.String())
		if len(wire) > 0 && (wire[0] != 0x16 || len(wire) > 1 && wire[1] != 0x03) {
			t.Errorf("connection %d began with % x, not a TLS handshake record", i, wire[:min(len(wire), 8)])
		}
		if bytes.Contains(wire, []byte(marker)) {
			t.Errorf("connection %d carried %q in clear", i, marker)
		}
	}
}

// wireTap copies what is read from a connection into tap.
type wireTap struct {
	net.Conn
	tap *lockedBuffer
}

func (w *wireTap) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.tap.Write(p[:n])
	return n, err
}
