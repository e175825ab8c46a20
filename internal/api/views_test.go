package api

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
	"github.com/tcpstated/tcpstated/internal/tracker"
)

func comm(s string) (c events.Comm) {
	copy(c[:], s)
	return c
}

// A row as the API shows it: names for states and owners, null for an
// unknown descriptor, "" for an unknown address, the age from the reading.
func TestSocketView(t *testing.T) {
	rows := []tracker.Socket{
		{Cookie: 7, State: events.CloseWait, Since: 1e9, SinceLowerBound: true, Pid: 300, Comm: comm("leaky"),
			Owner: events.OwnerFile, FD: 5, Family: events.IPv4, Saddr: netip.MustParseAddr("127.0.0.1"),
			Sport: 80, Daddr: netip.MustParseAddr("127.0.0.2"), Dport: 40000, Netns: 4026531840, Leaked: true},
		{Cookie: 8, State: events.TimeWait, Since: 3e9, FD: -1, Family: events.IPv6, TimeWait: true},
	}
	wall := func(ns uint64) time.Time { return time.Unix(100, int64(ns)) }
	got, err := json.Marshal(Sockets(rows, 3.5e9, wall))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"cookie":7,"pid":300,"comm":"leaky","fd":5,"owner":"fd","state":"CLOSE_WAIT","since":"1970-01-01T00:01:41Z","age_s":2.5,"age_is_lower_bound":true,"family":"ipv4","saddr":"127.0.0.1","sport":80,"daddr":"127.0.0.2","dport":40000,"netns":4026531840,"timewait_socket":false,"close_wait_leak":true},` +
		`{"cookie":8,"pid":0,"comm":"","fd":null,"owner":"unknown","state":"TIME_WAIT","since":"1970-01-01T00:01:43Z","age_s":0.5,"age_is_lower_bound":false,"family":"ipv6","saddr":"","sport":0,"daddr":"","dport":0,"netns":0,"timewait_socket":true,"close_wait_leak":false}]`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// Processes: leakers first, then by TIME_WAIT held; live sockets and time
// in state by state name, histograms cumulative.
func TestProcessView(t *testing.T) {
	var quiet, leaker, waiter tracker.Process
	quiet.Pid, quiet.Comm, quiet.FirstSeen = 1, comm("quiet"), 1e9
	quiet.Live[events.Established] = 2
	quiet.Time[events.SynSent].Add(2 * time.Millisecond)
	quiet.Time[events.SynSent].Add(200 * time.Microsecond)
	leaker.Pid, leaker.Comm, leaker.Leaking, leaker.Leaks = 2, comm("leaky"), 1, 3
	leaker.Live[events.CloseWait] = 1
	waiter.Pid, waiter.Comm = 3, comm("client")
	waiter.Live[events.TimeWait] = 9
	v := Processes([]tracker.Process{quiet, leaker, waiter}, 4e9)
	var order []string
	for _, p := range v {
		order = append(order, p.Comm)
	}
	if strings.Join(order, ",") != "leaky,client,quiet" {
		t.Fatalf("order %v", order)
	}
	q := v[2]
	st := q.Time["SYN_SENT"]
	if q.Sockets["ESTABLISHED"] != 2 || q.TrackedS != 3 || st.Count != 2 || st.MaxS != 0.002 || st.MeanS != 0.0011 {
		t.Fatalf("quiet: %+v", q)
	}
	// Cumulative: 0 at 100 µs, 1 at 500 µs, 2 from 5 ms on, 2 in +Inf.
	if st.Hist[0].Count != 0 || st.Hist[1].Count != 1 || st.Hist[3].Count != 2 || st.Hist[len(st.Hist)-1].LE != nil || st.Hist[len(st.Hist)-1].Count != 2 {
		t.Fatalf("histogram: %+v", st.Hist)
	}
	if v[0].CloseWaitLeaks != 1 || v[0].LeaksTotal != 3 || v[0].CloseWait != 1 || v[1].TimeWait != 9 {
		t.Fatalf("counts: %+v", v[:2])
	}
}
