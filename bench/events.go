package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// transitions counts the state changes of the churn's own connections,
// keyed "OLD>NEW".
type transitions map[string]int64

// finWait2Exit stands for FIN_WAIT2's exit, whichever way it is reported:
// the kernel's tracepoint shows FIN_WAIT2->CLOSE, tcpstated reports
// FIN_WAIT2->TIME_WAIT (or ->CLOSE when tcp_max_tw_buckets overflows and
// the kernel skips TIME_WAIT). Either way it is one of the ten.
const finWait2Exit = "FIN_WAIT2>(TIME_WAIT|CLOSE)"

// perConnection is the ten transitions every churn connection makes.
var perConnection = []string{
	"CLOSE>SYN_SENT", "SYN_SENT>ESTABLISHED", "ESTABLISHED>FIN_WAIT1",
	"FIN_WAIT1>FIN_WAIT2", finWait2Exit,
	"LISTEN>SYN_RECV", "SYN_RECV>ESTABLISHED", "ESTABLISHED>CLOSE_WAIT",
	"CLOSE_WAIT>LAST_ACK", "LAST_ACK>CLOSE",
}

// Counted apart from the transitions: the changes tcpstated streamed as
// inferred (no program ran for them), and the churn's events that do not
// name the process owning the socket: with another process's pid, or with
// none (pid 0, owner unknown: what follows a loss of the socket's earlier
// records).
const (
	inferredKey   = "(inferred)"
	wrongOwnerKey = "(wrong owner)"
	noOwnerKey    = "(no owner)"
)

// aside says whether a key counts something apart from the transitions.
func aside(k string) bool { return k == inferredKey || k == wrongOwnerKey || k == noOwnerKey }

// owners are the churn's processes, by side: every event of a client
// socket must name a client process, of a server socket a server process.
type owners struct{ client, server map[int]bool }

func newOwners(client, server []int) owners {
	o := owners{map[int]bool{}, map[int]bool{}}
	for _, p := range client {
		o.client[p] = true
	}
	for _, p := range server {
		o.server[p] = true
	}
	return o
}

func (o owners) known() bool { return len(o.client) > 0 || len(o.server) > 0 }

// right says whether pid owns a socket on this side of the churn (the
// server's when sport is the server port).
func (o owners) right(pid, sport, port int) bool {
	if sport == port {
		return o.server[pid]
	}
	return o.client[pid]
}

// add counts one transition if it belongs to a churn connection through
// port: one end must be the churn server's port; the listener's own
// CLOSE->LISTEN and LISTEN->CLOSE are not per-connection; TIME_WAIT
// exits are derived events that come ~60 s after the run, so none of
// a run's own are in it. An inferred FIN_WAIT1 -> TIME_WAIT or -> CLOSE
// stands for the two changes the kernel made unseen: FIN_WAIT1 ->
// FIN_WAIT2 and FIN_WAIT2's exit.
func (t transitions) add(old, new string, sport, dport, port int, inferred bool) (counted bool) {
	if sport != port && dport != port {
		return false
	}
	if new == "LISTEN" || (old == "LISTEN" && new == "CLOSE") || old == "TIME_WAIT" {
		return false
	}
	if inferred {
		t[inferredKey]++
		if old == "FIN_WAIT1" && (new == "TIME_WAIT" || new == "CLOSE") {
			t["FIN_WAIT1>FIN_WAIT2"]++
			t[finWait2Exit]++
			return true
		}
	}
	if old == "FIN_WAIT2" && (new == "TIME_WAIT" || new == "CLOSE") {
		t[finWait2Exit]++
		return true
	}
	t[old+">"+new]++
	return true
}

func (t transitions) total() int64 {
	var n int64
	for k, v := range t {
		if !aside(k) {
			n += v
		}
	}
	return n
}

// deviations lists each transition whose count is not the number of
// connections, e.g. "FIN_WAIT1>FIN_WAIT2 -41", to tell what was lost.
func (t transitions) deviations(connections int64) string {
	var out []string
	for _, k := range perConnection {
		if d := t[k] - connections; d != 0 {
			out = append(out, fmt.Sprintf("%s %+d", k, d))
		}
	}
	var extra []string
	for k, v := range t {
		if !slices.Contains(perConnection, k) && !aside(k) {
			extra = append(extra, fmt.Sprintf("%s %+d", k, v))
		}
	}
	slices.Sort(extra)
	return strings.Join(append(out, extra...), ", ")
}

// countDaemonEvents reads tcpstated's JSON lines and counts the churn's
// transitions. It extracts the few fields it needs by hand: a run writes
// millions of lines, and full JSON decoding of each would take longer
// than the run.
func countDaemonEvents(r io.Reader, port int) (transitions, error) {
	return countDaemonEventsOwned(r, port, owners{})
}

// countDaemonEventsOwned is countDaemonEvents checking every counted
// event's pid against the churn's processes.
func countDaemonEventsOwned(r io.Reader, port int, own owners) (transitions, error) {
	t := transitions{}
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// Longer than any event line: not one of ours. Skip the rest.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			continue
		}
		if len(line) > 0 && bytes.Contains(line, []byte(`"event":"state"`)) {
			old, ok1 := stringField(line, "old")
			new, ok2 := stringField(line, "new")
			sport, ok3 := intField(line, "sport")
			dport, ok4 := intField(line, "dport")
			if !ok1 || !ok2 || !ok3 || !ok4 {
				return t, fmt.Errorf("state event without old/new/sport/dport: %.200s", line)
			}
			counted := t.add(old, new, sport, dport, port, bytes.Contains(line, []byte(`"source":"inferred"`)))
			if counted && own.known() {
				switch pid, ok := intField(line, "pid"); {
				case !ok || pid == 0:
					t[noOwnerKey]++
				case !own.right(pid, sport, port):
					t[wrongOwnerKey]++
				}
			}
		}
		if err == io.EOF {
			return t, nil
		}
		if err != nil {
			return t, err
		}
	}
}

// fieldValue returns what follows `"key":` in a flat JSON object. A key
// inside a string value would have its quotes escaped, so an unescaped
// `"key":` is the key itself.
func fieldValue(line []byte, key string) []byte {
	pat := []byte(`"` + key + `":`)
	for off := 0; ; {
		i := bytes.Index(line[off:], pat)
		if i < 0 {
			return nil
		}
		i += off
		if i == 0 || line[i-1] != '\\' {
			return line[i+len(pat):]
		}
		off = i + len(pat)
	}
}

func stringField(line []byte, key string) (string, bool) {
	v := fieldValue(line, key)
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	end := bytes.IndexByte(v[1:], '"')
	if end < 0 {
		return "", false
	}
	return string(v[1 : 1+end]), true
}

func intField(line []byte, key string) (int, bool) {
	v := fieldValue(line, key)
	n := 0
	for n < len(v) && v[n] >= '0' && v[n] <= '9' {
		n++
	}
	if n == 0 {
		return 0, false
	}
	x, err := strconv.Atoi(string(v[:n]))
	return x, err == nil
}

// kernelStates names the kernel's TCP state numbers (include/net/tcp_states.h).
var kernelStates = [...]string{1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV",
	4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT",
	9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV"}

func stateName(n int) string {
	if n > 0 && n < len(kernelStates) {
		return kernelStates[n]
	}
	return "STATE_" + strconv.Itoa(n)
}

// bpftraceCounts is what the bpftrace peer's output holds.
type bpftraceCounts struct {
	churn  transitions
	events int64 // every transition line printed, any socket
	lost   int64 // from bpftrace's "Lost N events" lines
}

// countBpftraceEvents reads lines "pid old new sport dport" and bpftrace's
// own "Lost N events" notices.
func countBpftraceEvents(r io.Reader, port int) (bpftraceCounts, error) {
	c := bpftraceCounts{churn: transitions{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "Lost "); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(rest, " events"), 10, 64)
			if err != nil {
				return c, fmt.Errorf("unparsable %q", line)
			}
			c.lost += n
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 {
			continue // "Attaching 1 probe...", blank lines
		}
		var v [5]int
		ok := true
		for i := range f {
			var err error
			if v[i], err = strconv.Atoi(f[i]); err != nil {
				ok = false
			}
		}
		if !ok {
			continue
		}
		c.events++
		c.churn.add(stateName(v[1]), stateName(v[2]), v[3], v[4], port, false)
	}
	return c, sc.Err()
}

func countFile[T any](path string, port int, count func(io.Reader, int) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return count(f, port)
}
