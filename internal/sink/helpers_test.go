package sink

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// testEvent is a typical event line of about 300 bytes carrying id.
func testEvent(id int) []byte {
	return fmt.Appendf(nil, `{"level":"info","time":"2024-05-06T07:08:09.123456Z","id":%d,`+
		`"pid":4242,"comm":"nginx","saddr":"10.1.2.3","sport":44312,"daddr":"192.168.100.200",`+
		`"dport":443,"family":"AF_INET","oldstate":"SYN_SENT","newstate":"ESTABLISHED",`+
		`"span_us":1234,"netns":4026531840,"cgroup":"/system.slice/nginx.service"}`+"\n", id)
}

// mustOpen opens a sink that the test closes when it ends.
func mustOpen(t testing.TB, url string, o Options) Sink {
	t.Helper()
	s, err := Open(url, o)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitFor polls cond until it holds or timeout passes. Timeouts here are
// generous: they catch hangs, not slowness.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runWithin runs f in a goroutine and fails the test if it has not returned
// within timeout: the way to show that Write does not block.
func runWithin(t testing.TB, timeout time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("%s did not finish within %v", what, timeout)
	}
}

// eventIDs parses JSON lines and returns the "id" of each. A line that is
// not a whole JSON object fails the test unless allowCutTail is set and it
// is the last, unterminated line (a stream cut by a dying peer).
func eventIDs(t testing.TB, data []byte, allowCutTail bool) []int {
	t.Helper()
	var ids []int
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	terminated := len(data) == 0 || data[len(data)-1] == '\n'
	var lines [][]byte
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	for i, line := range lines {
		var ev struct {
			ID *int `json:"id"`
		}
		if err := json.Unmarshal(line, &ev); err != nil || ev.ID == nil {
			if allowCutTail && !terminated && i == len(lines)-1 {
				continue
			}
			t.Fatalf("line %d is not a whole event (%v): %q", i, err, line)
		}
		ids = append(ids, *ev.ID)
	}
	return ids
}

// peerReader collects what a peer receives on one connection.
type peerReader struct {
	done chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func readAll(r io.Reader) *peerReader {
	pr := &peerReader{done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		io.Copy(pr, r)
	}()
	return pr
}

func (pr *peerReader) Write(p []byte) (int, error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.buf.Write(p)
}

func (pr *peerReader) Bytes() []byte {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return bytes.Clone(pr.buf.Bytes())
}

// lockedBuffer is a goroutine-safe log destination for Options.Logger.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
