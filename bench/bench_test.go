package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCountDaemonEventsKeepsOnlyChurnTransitions(t *testing.T) {
	lines := strings.Join([]string{
		`{"level":"info","event":"state","sport":0,"dport":21212,"old":"CLOSE","new":"SYN_SENT"}`,
		`{"level":"info","event":"state","sport":21212,"dport":40000,"old":"LAST_ACK","new":"CLOSE"}`,
		`{"level":"info","event":"state","sport":40000,"dport":21212,"old":"FIN_WAIT2","new":"TIME_WAIT"}`,
		`{"level":"info","event":"state","sport":40000,"dport":21212,"old":"TIME_WAIT","new":"CLOSE"}`,
		`{"level":"info","event":"state","sport":21212,"dport":0,"old":"CLOSE","new":"LISTEN"}`,
		`{"level":"info","event":"state","sport":21212,"dport":0,"old":"LISTEN","new":"CLOSE"}`,
		`{"level":"info","event":"state","sport":22,"dport":5000,"old":"CLOSE","new":"SYN_SENT"}`,
		`{"level":"warn","event":"close_wait_leak","sport":21212,"dport":1,"state":"CLOSE_WAIT"}`,
		`{"level":"info","event":"state","comm":"x\"sport\":21212","sport":1,"dport":2,"old":"CLOSE","new":"SYN_SENT"}`,
		`{"level":"info","event":"state","sport":40001,"dport":21212,"old":"FIN_WAIT2","new":"CLOSE"}`,
	}, "\n") // no final newline: the last line still counts
	got, err := countDaemonEvents(strings.NewReader(lines), 21212)
	if err != nil {
		t.Fatal(err)
	}
	want := transitions{"CLOSE>SYN_SENT": 1, "LAST_ACK>CLOSE": 1, finWait2Exit: 2}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestCountDaemonEventsRejectsStateEventWithoutPorts(t *testing.T) {
	_, err := countDaemonEvents(strings.NewReader(`{"event":"state","old":"CLOSE","new":"SYN_SENT"}`+"\n"), 1)
	if err == nil {
		t.Fatal("a state event without ports was accepted")
	}
}

func TestCountBpftraceEvents(t *testing.T) {
	out := "Attaching 1 probe...\n" +
		"123 7 2 0 21212\n" + // CLOSE -> SYN_SENT
		"0 5 7 40000 21212\n" + // FIN_WAIT2 -> CLOSE
		"0 7 10 21212 0\n" + // the listener
		"55 1 4 22 6000\n" + // someone else's
		"Lost 17 events\n\n"
	c, err := countBpftraceEvents(strings.NewReader(out), 21212)
	if err != nil {
		t.Fatal(err)
	}
	if c.events != 4 || c.lost != 17 || c.churn.total() != 2 || c.churn["CLOSE>SYN_SENT"] != 1 || c.churn[finWait2Exit] != 1 {
		t.Fatalf("got %+v", c)
	}
}

// With the churn's processes known, every counted event must name the
// process on its side: a server socket's a server's, a client's a client's.
func TestOwnersAreChecked(t *testing.T) {
	in := `{"event":"state","pid":10,"sport":40000,"dport":21212,"old":"CLOSE","new":"SYN_SENT"}
{"event":"state","pid":20,"sport":21212,"dport":40000,"old":"LISTEN","new":"SYN_RECV"}
{"event":"state","pid":20,"sport":40000,"dport":21212,"old":"SYN_SENT","new":"ESTABLISHED"}
{"event":"state","sport":21212,"dport":40000,"old":"SYN_RECV","new":"ESTABLISHED"}
{"event":"state","pid":99,"sport":21212,"dport":0,"old":"CLOSE","new":"LISTEN"}
`
	tr, err := countDaemonEventsOwned(strings.NewReader(in), 21212, newOwners([]int{10}, []int{20}))
	if err != nil {
		t.Fatal(err)
	}
	// The client's event with the server's pid, and the one without a
	// pid; the listener's own event is not a churn transition.
	if tr[wrongOwnerKey] != 2 || tr.total() != 4 {
		t.Fatalf("got %v", tr)
	}
}

// An inferred FIN_WAIT1 exit stands for the two changes no program saw,
// and is counted apart, not as a delivered transition of its own.
func TestInferredExitCountsForTwo(t *testing.T) {
	in := `{"event":"state","sport":40000,"dport":21212,"old":"ESTABLISHED","new":"FIN_WAIT1","source":"tracepoint"}
{"event":"state","sport":40000,"dport":21212,"old":"FIN_WAIT1","new":"TIME_WAIT","source":"inferred"}
`
	tr, err := countDaemonEvents(strings.NewReader(in), 21212)
	if err != nil {
		t.Fatal(err)
	}
	if tr["FIN_WAIT1>FIN_WAIT2"] != 1 || tr[finWait2Exit] != 1 || tr[inferredKey] != 1 || tr.total() != 3 {
		t.Fatalf("got %v, total %d", tr, tr.total())
	}
	if d := tr.deviations(1); strings.Contains(d, "inferred") || strings.Contains(d, "FIN_WAIT1>TIME_WAIT") {
		t.Fatalf("deviations %q name the inferred change", d)
	}
}

func TestDeviationsNamesWhatIsMissing(t *testing.T) {
	tr := transitions{}
	for _, k := range perConnection {
		tr[k] = 5
	}
	if d := tr.deviations(5); d != "" {
		t.Fatalf("complete counts reported %q", d)
	}
	tr["FIN_WAIT1>FIN_WAIT2"] = 3
	tr["FIN_WAIT1>CLOSING"] = 2
	if d := tr.deviations(5); d != "FIN_WAIT1>FIN_WAIT2 -2, FIN_WAIT1>CLOSING +2" {
		t.Fatalf("got %q", d)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestWriteDocReplacesOnlyTheResults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "performance.md")
	head, foot := "# Performance\n\nhand-written\n\n", "\n## After\n\nkept\n"
	if err := os.WriteFile(path, []byte(head+beginMarker+"\nNot yet measured.\n"+endMarker+"\n"+foot), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, results := range []string{"first\n", "second\n"} {
		if err := writeDoc(path, results); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	if want := head + beginMarker + "\nsecond\n" + endMarker + "\n" + foot; string(b) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b, want)
	}
}

func TestProcReadersOnSelf(t *testing.T) {
	if _, err := procCPUSeconds(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if kib, err := procStatusKiB(os.Getpid(), "VmHWM"); err != nil || kib <= 0 {
		t.Fatalf("VmHWM %d, %v", kib, err)
	}
}

// fakeRun is a run of 10 connections whose tracer delivered that many events.
func fakeRun(pair int, tracer string, rate float64, delivered int64, lost int64) runResult {
	r := runResult{pair: pair, tracer: tracer, churn: churnResult{Connections: 10, Rate: rate, ClientPids: []int{10}, ServerPids: []int{20}}}
	if tracer != "none" {
		tr := transitions{}
		for _, k := range perConnection {
			tr[k] = 10
		}
		tr["LAST_ACK>CLOSE"] = delivered - 90
		r.trace = &tracerRun{churn: tr, lost: lost, lostKnown: true, events: 1000, cpuSeconds: 0.5, peakRSSKiB: 20 << 10}
	}
	return r
}

func TestChecksAndMarkdown(t *testing.T) {
	b := &bench{pairs: 3, tracers: []string{"none", "tcpstated"}, churn: churnConfig{duration: 1e9, clients: 2, servers: 1, port: 1},
		hold: &holdResult{connections: 100, hwmKiB: 30 << 10, lostKnown: true}, holdSize: 100}
	for pair, rate := range []float64{0.95, 0.85, 0.92} {
		b.runs = append(b.runs, fakeRun(pair+1, "none", 1000, 0, 0), fakeRun(pair+1, "tcpstated", 1000*rate, 100, 0))
	}
	if !b.passed() {
		t.Fatalf("median ratio 0.92, complete counts, no loss, 30 MiB: should pass: %+v", b.checks())
	}
	b.runs[5] = fakeRun(3, "tcpstated", 920, 99, 0)
	if b.passed() {
		t.Fatal("a run short of one event passed")
	}
	b.runs[5] = fakeRun(3, "tcpstated", 920, 100, 1)
	if b.passed() {
		t.Fatal("a lost record passed")
	}
	b.runs[5] = fakeRun(3, "tcpstated", 880, 100, 0)
	if b.passed() {
		t.Fatal("median ratio 0.88 passed")
	}
	b.runs[5] = fakeRun(3, "tcpstated", 920, 100, 0)
	b.hold.hwmKiB = 65 << 10
	if b.passed() {
		t.Fatal("65 MiB with the live connections passed")
	}
	var md strings.Builder
	b.markdown(&md)
	for _, want := range []string{"### Targets", "| tcpstated | 920 | 0.920 |", "**MISSED**", "65.0 MiB"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
}
