package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A peer is this test binary re-executed as a separate process that opens,
// accepts and closes sockets when told to, one command per line on stdin.
// Separate processes make ownership visible: on loopback the softirq that
// runs a socket's transition often runs in the *other* process.

const peerEnv = "TCPSTATED_E2E_PEER"

// TestMain turns the binary into a peer when asked to.
func TestMain(m *testing.M) {
	if os.Getenv(peerEnv) == "1" {
		os.Exit(runPeer(os.Stdin, os.Stdout))
	}
	if os.Getenv(workerEnv) != "" {
		os.Exit(runWorker())
	}
	if os.Getenv(holderEnv) == "1" {
		os.Exit(runNetnsHolder())
	}
	if arg := os.Getenv(getEnv); arg != "" {
		os.Exit(runGet(arg))
	}
	os.Exit(m.Run())
}

func runPeer(in io.Reader, out io.Writer) int {
	var (
		ln    net.Listener
		conns []net.Conn
	)
	reply := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	last := func() net.Conn {
		if len(conns) == 0 {
			return nil
		}
		return conns[len(conns)-1]
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "listen", "listenreuse": // listen NETWORK ADDR; listenreuse: with SO_REUSEPORT, as nginx workers do
			lc := net.ListenConfig{}
			if f[0] == "listenreuse" {
				lc.Control = reusePort
			}
			lc.SetMultipathTCP(false) // Go's listeners default to MPTCP
			l, err := lc.Listen(context.Background(), f[1], f[2])
			if err != nil {
				reply("err %v", err)
				continue
			}
			ln = l
			reply("ok %d", l.Addr().(*net.TCPAddr).Port)
		case "listenfull": // listenfull: on 127.0.0.1 with a backlog of 0: one unaccepted connection fills its queue, and the kernel drops the SYNs after it
			l, err := listenBacklog0()
			if err != nil {
				reply("err %v", err)
				continue
			}
			ln = l
			reply("ok %d", l.Addr().(*net.TCPAddr).Port)
		case "acceptqueued": // accept what is queued; reply the peers' ports
			var ports []string
			tl := ln.(*net.TCPListener)
			for {
				tl.SetDeadline(time.Now().Add(200 * time.Millisecond))
				c, err := tl.Accept()
				if err != nil {
					break
				}
				conns = append(conns, c)
				ports = append(ports, strconv.Itoa(c.RemoteAddr().(*net.TCPAddr).Port))
			}
			tl.SetDeadline(time.Time{})
			reply("ok %s", strings.Join(ports, ","))
		case "accept": // accept [N]
			n := 1
			if len(f) > 1 {
				n, _ = strconv.Atoi(f[1])
			}
			var err error
			for i := 0; i < n && err == nil; i++ {
				var c net.Conn
				if c, err = ln.Accept(); err == nil {
					conns = append(conns, c)
				}
			}
			if err != nil {
				reply("err %v", err)
				continue
			}
			reply("ok")
		case "connect": // connect NETWORK ADDR [N]
			n := 1
			if len(f) > 3 {
				n, _ = strconv.Atoi(f[3])
			}
			var err error
			var c net.Conn
			for i := 0; i < n && err == nil; i++ {
				d := net.Dialer{Timeout: 5 * time.Second}
				if c, err = d.Dial(f[1], f[2]); err == nil {
					conns = append(conns, c)
				}
			}
			switch {
			case errors.Is(err, syscall.ECONNREFUSED):
				reply("refused")
			case errors.Is(err, syscall.ETIMEDOUT):
				reply("timedout")
			case err != nil:
				reply("err %v", err)
			default:
				reply("ok %d", c.LocalAddr().(*net.TCPAddr).Port)
			}
		case "linger0": // RST on close, no FIN, no TIME_WAIT
			if err := last().(*net.TCPConn).SetLinger(0); err != nil {
				reply("err %v", err)
				continue
			}
			reply("ok")
		case "close": // close every connection
			for _, c := range conns {
				c.Close()
			}
			conns = nil
			reply("ok")
		case "write": // write N: N bytes on the last connection
			n, _ := strconv.Atoi(f[1])
			c := last()
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(bytes.Repeat([]byte{'x'}, n)); err != nil {
				reply("err %v", err)
				continue
			}
			reply("ok")
		case "read": // read N: exactly N bytes from the last connection
			n, _ := strconv.Atoi(f[1])
			c := last()
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
				reply("err %v", err)
				continue
			}
			reply("ok")
		case "readeof": // wait for the peer's FIN on the last connection
			c := last()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil {
				reply("err %v", err)
				continue
			}
			reply("ok")
		case "spawnworker": // spawnworker N: a child that inherits the listener and accepts N
			pid, err := spawnWorker(ln, f[1])
			if err != nil {
				reply("err %v", err)
				continue
			}
			reply("ok %d", pid)
		case "stopworker":
			stopWorker()
			reply("ok")
		case "closelistener":
			ln.Close()
			reply("ok")
		case "stray": // stray FROMPORT TOPORT: one bare ACK on loopback, from a raw socket
			from, _ := strconv.Atoi(f[1])
			to, _ := strconv.Atoi(f[2])
			if err := sendStrayACK(uint16(from), uint16(to)); err != nil {
				reply("err %v", err)
				continue
			}
			reply("ok")
		case "netns": // the inode of the peer's network namespace
			ino, err := netnsOf(os.Getpid())
			if err != nil {
				reply("err %v", err)
				continue
			}
			reply("ok %d", ino)
		case "exit":
			return 0
		default:
			reply("err unknown command %q", f[0])
		}
	}
	return 0
}

// Peer drives a peer process from a test.
type Peer struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	Pid int

	sent string // the command Reply answers
}

// StartPeer starts a peer process in the test's own network namespace.
func StartPeer(t *testing.T) *Peer {
	t.Helper()
	return startPeer(t, exec.Command(os.Args[0], "-test.run=^$"))
}

func startPeer(t *testing.T, cmd *exec.Cmd) *Peer {
	t.Helper()
	cmd.Env = append(os.Environ(), peerEnv+"=1")
	in, outPipe, err := startPiped(cmd)
	if err != nil {
		t.Fatalf("starting peer %s: %v", cmd.Path, err)
	}
	p := &Peer{t: t, cmd: cmd, in: in, out: bufio.NewScanner(outPipe), Pid: cmd.Process.Pid}
	t.Cleanup(p.Stop)
	return p
}

// listenBacklog0 listens on 127.0.0.1 with a backlog of 0, which Go's
// listeners do not offer (they take net.core.somaxconn).
func listenBacklog0() (net.Listener, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close() // FileListener holds a copy
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return nil, err
	}
	if err := unix.Listen(fd, 0); err != nil {
		return nil, err
	}
	return net.FileListener(f)
}

// startPiped starts cmd, a child of the test binary, with its stdin and
// stdout piped to the test and its stderr the test's.
func startPiped(cmd *exec.Cmd) (io.WriteCloser, io.ReadCloser, error) {
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	return in, out, cmd.Start()
}

// Do sends one command and returns the reply, failing the test on "err".
func (p *Peer) Do(format string, args ...any) string {
	p.t.Helper()
	p.Send(format, args...)
	return p.Reply()
}

// Send gives the peer a command without waiting for it to be done, so
// that another peer can act meanwhile (a read that a write waits on);
// Reply waits for it.
func (p *Peer) Send(format string, args ...any) {
	p.t.Helper()
	line := fmt.Sprintf(format, args...)
	if _, err := fmt.Fprintln(p.in, line); err != nil {
		p.t.Fatalf("peer %d: %s: %v", p.Pid, line, err)
	}
	p.sent = line
}

// Reply is the answer to the last command sent.
func (p *Peer) Reply() string {
	p.t.Helper()
	line := p.sent
	if !p.out.Scan() {
		p.t.Fatalf("peer %d: %s: no reply (%v)", p.Pid, line, p.out.Err())
	}
	reply := p.out.Text()
	if strings.HasPrefix(reply, "err") {
		p.t.Fatalf("peer %d: %s: %s", p.Pid, line, reply)
	}
	return reply
}

// Port runs a command that replies "ok PORT".
func (p *Peer) Port(format string, args ...any) int {
	p.t.Helper()
	reply := p.Do(format, args...)
	var port int
	if _, err := fmt.Sscanf(reply, "ok %d", &port); err != nil {
		p.t.Fatalf("peer %d: want \"ok PORT\", got %q", p.Pid, reply)
	}
	return port
}

// Stop ends the peer process.
func (p *Peer) Stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	fmt.Fprintln(p.in, "exit")
	p.in.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

const workerEnv = "TCPSTATED_E2E_WORKER"

var worker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
}

// spawnWorker starts a process that inherits the listening socket, as a
// pre-forking server's worker does, and accepts n connections with it.
func spawnWorker(ln net.Listener, n string) (int, error) {
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"="+n, peerEnv+"=")
	cmd.ExtraFiles = []*os.File{f} // fd 3
	in, out, err := startPiped(cmd)
	if err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "accepted" {
		cmd.Process.Kill()
		return 0, fmt.Errorf("worker: %q %v", line, err)
	}
	worker.cmd, worker.in = cmd, in
	return cmd.Process.Pid, nil
}

func stopWorker() {
	if worker.cmd != nil {
		worker.in.Close()
		worker.cmd.Wait()
		worker.cmd = nil
	}
}

// runWorker accepts on the inherited listener, holds the connections
// until stdin closes, then closes them.
func runWorker() int {
	n, _ := strconv.Atoi(os.Getenv(workerEnv))
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			return 1
		}
		conns = append(conns, c)
	}
	fmt.Println("accepted")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return 0
}

// sendStrayACK sends one TCP segment with only ACK set from 127.0.0.1:from
// to 127.0.0.1:to, out of any window: what a late retransmission looks
// like to a TIME_WAIT socket.
func sendStrayACK(from, to uint16) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_TCP)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], from)
	binary.BigEndian.PutUint16(seg[2:], to)
	binary.BigEndian.PutUint32(seg[4:], 12345) // seq
	binary.BigEndian.PutUint32(seg[8:], 67890) // ack
	seg[12] = 5 << 4                           // header length: 5 words
	seg[13] = 0x10                             // ACK
	binary.BigEndian.PutUint16(seg[14:], 65535)
	// Checksum over the IPv4 pseudo-header and the segment.
	lo := []byte{127, 0, 0, 1}
	pseudo := append(append(append([]byte{}, lo...), lo...), 0, syscall.IPPROTO_TCP, 0, byte(len(seg)))
	var sum uint32
	for _, b := range [][]byte{pseudo, seg} {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(seg[16:], ^uint16(sum))
	return syscall.Sendto(fd, seg, 0, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
}

// reusePort sets SO_REUSEPORT before bind.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
