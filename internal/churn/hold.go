package churn

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Held is a set of established loopback connections, both ends open in
// this process, and the listeners they came through.
type Held struct {
	Ports     []int
	listeners []int
	clients   []int
	servers   []int
}

// acceptTimeout makes a blocking accept return now and then, so an accept
// loop notices when every expected connection has arrived or the hold
// gave up.
const acceptTimeout = 200 * time.Millisecond

// Hold opens count connections spread round-robin over listeners (one
// per port in ports; 0 asks the kernel for a port), each from its own
// source address starting at SourceAddr(firstSource), and keeps both ends
// open. It needs 2*count+len(ports) free descriptors.
func Hold(count int, ports []int, firstSource int) (*Held, error) {
	if count < 1 || len(ports) < 1 {
		return nil, errors.New("hold needs a positive count and at least one port")
	}
	h := &Held{}
	for _, p := range ports {
		fd, bound, err := Listen(p, false, false, listenBacklog)
		if err != nil {
			h.Close()
			return nil, err
		}
		tv := unix.NsecToTimeval(acceptTimeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			h.Close()
			return nil, fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		h.listeners = append(h.listeners, fd)
		h.Ports = append(h.Ports, bound)
	}

	var (
		mu       sync.Mutex
		accepted atomic.Int64
		done     atomic.Bool
		wg       sync.WaitGroup
	)
	h.servers = make([]int, 0, count)
	for _, lfd := range h.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
				if err != nil {
					continue // EAGAIN from SO_RCVTIMEO, EINTR, ECONNABORTED
				}
				mu.Lock()
				h.servers = append(h.servers, fd)
				mu.Unlock()
				accepted.Add(1)
			}
		}()
	}

	h.clients = make([]int, 0, count)
	var err error
	for i := range count {
		fd, derr := Dial(SourceAddr(firstSource+i), h.Ports[i%len(h.Ports)])
		if derr != nil {
			err = fmt.Errorf("connection %d of %d: %w", i+1, count, derr)
			break
		}
		h.clients = append(h.clients, fd)
	}
	// Every connect returned, so every connection is in an accept queue;
	// wait for the accept loops to take them all.
	deadline := time.Now().Add(10 * time.Second)
	for err == nil && accepted.Load() < int64(count) {
		if time.Now().After(deadline) {
			err = fmt.Errorf("accepted %d of %d connections", accepted.Load(), count)
		}
		time.Sleep(time.Millisecond)
	}
	done.Store(true)
	wg.Wait()
	if err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// Connections is how many established connections are held.
func (h *Held) Connections() int { return len(h.clients) }

// Close closes the clients first, then the servers (the usual four-way
// close), then the listeners.
func (h *Held) Close() {
	for _, set := range [][]int{h.clients, h.servers, h.listeners} {
		for _, fd := range set {
			unix.Close(fd)
		}
	}
	h.clients, h.servers, h.listeners = nil, nil, nil
}
