package metrics

import (
	"bytes"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpstated/tcpstated/internal/events"
)

var update = flag.Bool("update", false, "rewrite testdata/*.prom from the current output")

func testSnapshot() *Snapshot {
	return &Snapshot{
		Build:         Build{Version: "v1.2.3", Commit: "abcdef123456", GoVersion: "go1.26.8", Kernel: "6.18.44"},
		StartTime:     time.Unix(1700000000, 123e6),
		Features:      []Feature{{Name: "core", On: true}, {Name: "timewait", On: true}, {Name: "snapshot", On: true}},
		NetnsSnapshot: &NetnsSnapshot{Walked: 3, Missed: 1},
		RecordsRead:   1000, EventsWritten: 990, DecodeErrors: 1,
		Kernel: &events.Counters{Records: 1001, Lost: 3, LostPerCPU: []uint64{1, 0, 2, 0},
			HeldFull: 4, TimeWaitFull: 5, WatchFull: 6, Filtered: 7},
		Table: Table{Entries: 12, Capacity: 262144, Full: 8, ProcessesEvicted: 9,
			CommOverflow: 10, CommLimit: 256, UnknownTimeWaitEnds: 11, Inferred: 12, SettleErrors: 13, Duplicates: 14,
			PeerLimit: 256, PeerOverflow: 15},
		Transitions: []Transition{
			{"SYN_SENT", "ESTABLISHED", 7}, {"ESTABLISHED", "FIN_WAIT1", 5}, {"LISTEN", "CLOSE", 0},
		},
		Bounds: []float64{0.0001, 0.001, 1, 60},
		Comms: []Comm{
			{Name: "nginx", Transitions: 20, LeaksTotal: 2, Leaking: 1,
				Sockets: []StateCount{{"ESTABLISHED", 3}, {"CLOSE_WAIT", 1}, {"LISTEN", 0}},
				Time: []StateTime{
					{State: "SYN_RECV", Sum: 0.00042, Buckets: []uint64{3, 1, 0, 0, 0}},
					{State: "TIME_WAIT", Sum: 181.5, Buckets: []uint64{0, 0, 0, 2, 1}},
				}},
			{Name: "curl", Transitions: 10,
				Time: []StateTime{{State: "SYN_SENT", Sum: 0.0003, Buckets: []uint64{2, 1, 0, 0, 0}}},
				Conn: Conn{Connect: StateTime{Sum: 0.102, Buckets: []uint64{0, 0, 2, 0, 0}},
					Life: StateTime{Sum: 3.5, Buckets: []uint64{0, 0, 1, 1, 0}},
					Ends: []EndCount{{"normal", 1}, {"reset_received", 1}}}},
		},
		Connections: true,
		Peers: []Peer{
			{Name: "10.0.0.7:5432", Conn: Conn{Connect: StateTime{Sum: 0.102, Buckets: []uint64{0, 0, 2, 0, 0}},
				Ends: []EndCount{{"normal", 2}}}},
			{Name: "192.0.2.1", Conn: Conn{Handshake: StateTime{Sum: 0.0004, Buckets: []uint64{2, 1, 0, 0, 0}},
				Ends: []EndCount{{"reset_sent", 3}}}},
		},
		Resets: Resets{On: true, Sent: 3, Received: 1},
		Sinks: []Sink{
			{Name: "stdout", Queued: 2, Capacity: 4096, Written: 990, Connected: true},
			{Name: "tcp://127.0.0.1:5140", Capacity: 4096, Dropped: 5, Errors: 2, Reconnects: 1},
		},
	}
}

func render(t *testing.T, s *Snapshot) string {
	t.Helper()
	var b bytes.Buffer
	if err := Render(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The whole output of a known snapshot, against testdata/snapshot.prom
// (go test -update rewrites it; read the diff before committing).
func TestGolden(t *testing.T) {
	got := render(t, testSnapshot())
	path := filepath.Join("testdata", "snapshot.prom")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("output differs from %s at line %d:\n got  %q\n want %q", path, i+1, g, w)
			}
		}
	}
	parseExposition(t, got)
}

// Key lines, spelled out here so that a wrong golden file cannot hide them.
func TestKeyLines(t *testing.T) {
	out := render(t, testSnapshot())
	for _, block := range []string{
		"# HELP tcpstated_transitions_total TCP state changes, by old and new state.\n" +
			"# TYPE tcpstated_transitions_total counter\n" +
			"tcpstated_transitions_total{old=\"SYN_SENT\",new=\"ESTABLISHED\"} 7\n" +
			"tcpstated_transitions_total{old=\"ESTABLISHED\",new=\"FIN_WAIT1\"} 5\n" +
			"# HELP ",
		"tcpstated_state_duration_seconds_bucket{state=\"TIME_WAIT\",comm=\"nginx\",le=\"0.0001\"} 0\n" +
			"tcpstated_state_duration_seconds_bucket{state=\"TIME_WAIT\",comm=\"nginx\",le=\"0.001\"} 0\n" +
			"tcpstated_state_duration_seconds_bucket{state=\"TIME_WAIT\",comm=\"nginx\",le=\"1\"} 0\n" +
			"tcpstated_state_duration_seconds_bucket{state=\"TIME_WAIT\",comm=\"nginx\",le=\"60\"} 2\n" +
			"tcpstated_state_duration_seconds_bucket{state=\"TIME_WAIT\",comm=\"nginx\",le=\"+Inf\"} 3\n" +
			"tcpstated_state_duration_seconds_sum{state=\"TIME_WAIT\",comm=\"nginx\"} 181.5\n" +
			"tcpstated_state_duration_seconds_count{state=\"TIME_WAIT\",comm=\"nginx\"} 3\n",
		"# TYPE tcpstated_state_duration_seconds histogram\n" +
			"tcpstated_state_duration_seconds_bucket{state=\"SYN_SENT\",comm=\"curl\",le=\"0.0001\"} 2\n",
		"tcpstated_sockets{state=\"ESTABLISHED\",comm=\"nginx\"} 3\ntcpstated_sockets{state=\"CLOSE_WAIT\",comm=\"nginx\"} 1\n# HELP",
		"tcpstated_close_wait_leaks_total{comm=\"curl\"} 0\ntcpstated_close_wait_leaks_total{comm=\"nginx\"} 2\n",
		"tcpstated_close_wait_leaking{comm=\"curl\"} 0\ntcpstated_close_wait_leaking{comm=\"nginx\"} 1\n",
		"tcpstated_build_info{version=\"v1.2.3\",commit=\"abcdef123456\",goversion=\"go1.26.8\",kernel=\"6.18.44\"} 1\n",
		"tcpstated_start_time_seconds 1700000000.123\n",
		"tcpstated_ringbuf_lost_total 3\n",
		"tcpstated_ringbuf_lost_per_cpu_total{cpu=\"2\"} 2\n",
		"tcpstated_sink_dropped_total{sink=\"tcp://127.0.0.1:5140\"} 5\n",
		"tcpstated_sink_connected{sink=\"stdout\"} 1\ntcpstated_sink_connected{sink=\"tcp://127.0.0.1:5140\"} 0\n",
		"tcpstated_peer_connect_duration_seconds_bucket{peer=\"10.0.0.7:5432\",le=\"0.001\"} 0\n" +
			"tcpstated_peer_connect_duration_seconds_bucket{peer=\"10.0.0.7:5432\",le=\"1\"} 2\n" +
			"tcpstated_peer_connect_duration_seconds_bucket{peer=\"10.0.0.7:5432\",le=\"60\"} 2\n" +
			"tcpstated_peer_connect_duration_seconds_bucket{peer=\"10.0.0.7:5432\",le=\"+Inf\"} 2\n" +
			"tcpstated_peer_connect_duration_seconds_sum{peer=\"10.0.0.7:5432\"} 0.102\n" +
			"tcpstated_peer_connect_duration_seconds_count{peer=\"10.0.0.7:5432\"} 2\n",
		"tcpstated_handshake_duration_seconds histogram\n# HELP",
		"tcpstated_connections_total{comm=\"curl\",end=\"normal\"} 1\ntcpstated_connections_total{comm=\"curl\",end=\"reset_received\"} 1\n",
		"tcpstated_peer_connections_total{peer=\"192.0.2.1\",end=\"reset_sent\"} 3\n",
		"tcpstated_resets_total{direction=\"sent\"} 3\ntcpstated_resets_total{direction=\"received\"} 1\n",
		"tcpstated_peer_label_overflow_total 15\n",
	} {
		if !strings.Contains(out, block) {
			t.Errorf("output lacks\n%s\n--- output:\n%s", block, out)
		}
	}
	if strings.Contains(out, `"LISTEN",new="CLOSE"`) || strings.Contains(out, `state="LISTEN",comm="nginx"`) {
		t.Errorf("zero transitions or zero live counts are written")
	}
}

// Every family the documentation promises is there, typed, with HELP, and
// counters end in _total.
func TestFamilies(t *testing.T) {
	x := parseExposition(t, render(t, testSnapshot()))
	want := map[string]string{
		"tcpstated_transitions_total":                   "counter",
		"tcpstated_state_duration_seconds":              "histogram",
		"tcpstated_sockets":                             "gauge",
		"tcpstated_close_wait_leaks_total":              "counter",
		"tcpstated_close_wait_leaking":                  "gauge",
		"tcpstated_ringbuf_records_total":               "counter",
		"tcpstated_ringbuf_submitted_total":             "counter",
		"tcpstated_ringbuf_lost_total":                  "counter",
		"tcpstated_ringbuf_lost_per_cpu_total":          "counter",
		"tcpstated_decode_errors_total":                 "counter",
		"tcpstated_events_total":                        "counter",
		"tcpstated_kernel_synrecv_held_full_total":      "counter",
		"tcpstated_timewait_table_full_total":           "counter",
		"tcpstated_timewait_watch_full_total":           "counter",
		"tcpstated_timewait_preexisting_skipped_total":  "counter",
		"tcpstated_kernel_recursion_misses_total":       "counter",
		"tcpstated_kernel_nested_recovered_total":       "counter",
		"tcpstated_kernel_timer_recursion_misses_total": "counter",
		"tcpstated_filtered_total":                      "counter",
		"tcpstated_socket_table_entries":                "gauge",
		"tcpstated_socket_table_capacity":               "gauge",
		"tcpstated_socket_table_full_total":             "counter",
		"tcpstated_comm_label_overflow_total":           "counter",
		"tcpstated_processes_evicted_total":             "counter",
		"tcpstated_sink_queue_length":                   "gauge",
		"tcpstated_sink_queue_capacity":                 "gauge",
		"tcpstated_sink_dropped_total":                  "counter",
		"tcpstated_sink_written_total":                  "counter",
		"tcpstated_sink_errors_total":                   "counter",
		"tcpstated_sink_connected":                      "gauge",
		"tcpstated_build_info":                          "gauge",
		"tcpstated_comm_transitions_total":              "counter",
		"tcpstated_feature_enabled":                     "gauge",
		"tcpstated_snapshot_netns":                      "gauge",
		"tcpstated_start_time_seconds":                  "gauge",
		"tcpstated_comm_labels":                         "gauge",
		"tcpstated_comm_label_limit":                    "gauge",
		"tcpstated_timewait_ends_untracked_total":       "counter",
		"tcpstated_transitions_inferred_total":          "counter",
		"tcpstated_sock_diag_errors_total":              "counter",
		"tcpstated_duplicates_dropped_total":            "counter",
		"tcpstated_accept_unnamed_total":                "counter",
		"tcpstated_sink_reconnects_total":               "counter",
		"tcpstated_sink_truncated_total":                "counter",
		"tcpstated_connect_duration_seconds":            "histogram",
		"tcpstated_handshake_duration_seconds":          "histogram",
		"tcpstated_connection_duration_seconds":         "histogram",
		"tcpstated_connections_total":                   "counter",
		"tcpstated_peer_connect_duration_seconds":       "histogram",
		"tcpstated_peer_handshake_duration_seconds":     "histogram",
		"tcpstated_peer_connection_duration_seconds":    "histogram",
		"tcpstated_peer_connections_total":              "counter",
		"tcpstated_peer_label_limit":                    "gauge",
		"tcpstated_peer_label_overflow_total":           "counter",
		"tcpstated_resets_total":                        "counter",
	}
	for name, typ := range want {
		f := x.families[name]
		if f == nil {
			t.Errorf("family %s missing", name)
			continue
		}
		if f.typ != typ {
			t.Errorf("%s: type %s, want %s", name, f.typ, typ)
		}
	}
	for _, name := range x.order {
		f := x.families[name]
		if !strings.HasPrefix(name, "tcpstated_") {
			t.Errorf("%s: not prefixed tcpstated_", name)
		}
		if f.help == "" {
			t.Errorf("%s: no HELP text", name)
		}
		if (f.typ == "counter") != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: type %s; counters, and only counters, end in _total", name, f.typ)
		}
		if _, ok := want[name]; !ok {
			t.Errorf("%s: not listed here (nor, probably, in docs/metrics.md)", name)
		}
		for _, s := range f.samples {
			if _, ok := s.labels["pid"]; ok {
				t.Errorf("%s: a pid label is unbounded", name)
			}
		}
	}
}

// Comm values come from processes (prctl(PR_SET_NAME), the name of any
// executable): whatever they hold, the output stays valid, one label is
// one value, and the value reads back as the comm (invalid UTF-8 bytes
// as U+FFFD, as in the JSON stream).
func TestHostileComms(t *testing.T) {
	hostile := []string{
		`a"b`, `a\b`, "a\nb", `a\nb`, `\`, `"`, "\n", `\"`, `\\n`,
		"x\"} 1\nevil_total 1 #", `x",comm="y`, `}{`, "# HELP x y",
		"\t\r\x01\x1b[31m\x7f", "日本語テスト", "", "other", " ",
		"ok\xffok", "\xff\xfe\xfd", "\xc3", "tcpstated_x",
	}
	s := testSnapshot()
	s.Comms = nil
	for i, c := range hostile {
		s.Comms = append(s.Comms, Comm{
			Name: c, Transitions: uint64(i + 1), Leaking: 1,
			Sockets: []StateCount{{"ESTABLISHED", i + 1}},
			Time:    []StateTime{{State: "SYN_SENT", Sum: 0.001, Buckets: []uint64{1, 0, 0, 0, 0}}},
		})
	}
	out := render(t, s)
	x := parseExposition(t, out)
	for i, c := range hostile {
		want := LabelValue(c)
		if v, ok := x.get(t, "tcpstated_comm_transitions_total", "comm", want); !ok || v != float64(i+1) {
			t.Errorf("comm %q: transitions series %q = %v, %v; want %d", c, want, v, ok, i+1)
		}
		if v, ok := x.get(t, "tcpstated_sockets", "state", "ESTABLISHED", "comm", want); !ok || v != float64(i+1) {
			t.Errorf("comm %q: sockets series = %v, %v", c, v, ok)
		}
		if _, ok := x.get(t, "tcpstated_state_duration_seconds_count", "state", "SYN_SENT", "comm", want); !ok {
			t.Errorf("comm %q: no histogram", c)
		}
	}
	if n := len(x.families["tcpstated_comm_transitions_total"].samples); n != len(hostile) {
		t.Errorf("%d comm series for %d distinct comms", n, len(hostile))
	}
	for _, bad := range []string{"\nevil_total", "\n# HELP x"} {
		if strings.Contains(out, bad) {
			t.Errorf("a comm value broke out of its label: output contains %q", bad)
		}
	}
	checkPromtool(t, out)
}

// Comms that differ only in bytes that are not UTF-8 show as one label
// value: they are one series, with their counts added.
func TestCollidingCommsMerge(t *testing.T) {
	s := testSnapshot()
	s.Comms = []Comm{
		{Name: "a\xffb", Transitions: 1, LeaksTotal: 1, Leaking: 1,
			Sockets: []StateCount{{"CLOSE_WAIT", 1}},
			Time:    []StateTime{{State: "SYN_SENT", Sum: 1, Buckets: []uint64{1, 0, 0, 0, 0}}}},
		{Name: "a\xfeb", Transitions: 2, LeaksTotal: 2, Leaking: 2,
			Sockets: []StateCount{{"CLOSE_WAIT", 2}, {"LISTEN", 1}},
			Time:    []StateTime{{State: "SYN_SENT", Sum: 2, Buckets: []uint64{0, 2, 0, 0, 0}}}},
		{Name: "a\uFFFDb", Transitions: 4},
	}
	x := parseExposition(t, render(t, s))
	name := "a\uFFFDb"
	for _, c := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"tcpstated_comm_transitions_total", []string{"comm", name}, 7},
		{"tcpstated_close_wait_leaks_total", []string{"comm", name}, 3},
		{"tcpstated_close_wait_leaking", []string{"comm", name}, 3},
		{"tcpstated_sockets", []string{"state", "CLOSE_WAIT", "comm", name}, 3},
		{"tcpstated_sockets", []string{"state", "LISTEN", "comm", name}, 1},
		{"tcpstated_state_duration_seconds_count", []string{"state", "SYN_SENT", "comm", name}, 3},
		{"tcpstated_state_duration_seconds_sum", []string{"state", "SYN_SENT", "comm", name}, 3},
		{"tcpstated_state_duration_seconds_bucket", []string{"state", "SYN_SENT", "comm", name, "le", "0.0001"}, 1},
		{"tcpstated_state_duration_seconds_bucket", []string{"state", "SYN_SENT", "comm", name, "le", "0.001"}, 3},
	} {
		if v, ok := x.get(t, c.metric, c.labels...); !ok || v != c.want {
			t.Errorf("%s%q = %v (present %v), want %v", c.metric, c.labels, v, ok, c.want)
		}
	}
	// The snapshot itself is not modified by the merge.
	if s.Comms[0].Time[0].Buckets[1] != 0 {
		t.Errorf("merging wrote into the snapshot's buckets")
	}
}

// Buckets are cumulative: never decreasing along le, +Inf equal to _count,
// and the differences give back the per-bucket counts; le values ascend.
func TestHistogramCumulative(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	bounds := []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300}
	s := &Snapshot{Bounds: bounds}
	type key struct{ comm, state string }
	want := map[key][]uint64{}
	for c := 0; c < 20; c++ {
		comm := Comm{Name: "comm" + strconv.Itoa(c)}
		for _, st := range []string{"SYN_SENT", "TIME_WAIT", "CLOSE_WAIT"} {
			b := make([]uint64, len(bounds)+1)
			for i := range b {
				if rng.IntN(3) == 0 {
					b[i] = uint64(rng.IntN(1000))
				}
			}
			b[len(b)-1] += 1 // never empty
			comm.Time = append(comm.Time, StateTime{State: st, Sum: rng.Float64() * 100, Buckets: b})
			want[key{comm.Name, st}] = b
		}
		s.Comms = append(s.Comms, comm)
	}
	x := parseExposition(t, render(t, s))
	f := x.families["tcpstated_state_duration_seconds"]
	type series struct {
		les   []float64
		cums  []float64
		count float64
	}
	got := map[key]*series{}
	for _, sm := range f.samples {
		k := key{sm.labels["comm"], sm.labels["state"]}
		if got[k] == nil {
			got[k] = &series{count: -1}
		}
		g := got[k]
		switch sm.name {
		case "tcpstated_state_duration_seconds_bucket":
			le, err := strconv.ParseFloat(sm.labels["le"], 64)
			if err != nil {
				t.Fatalf("line %d: le %q: %v", sm.line, sm.labels["le"], err)
			}
			g.les = append(g.les, le)
			g.cums = append(g.cums, sm.value)
		case "tcpstated_state_duration_seconds_count":
			g.count = sm.value
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d histograms, want %d", len(got), len(want))
	}
	for k, g := range got {
		if len(g.les) != len(bounds)+1 || !math.IsInf(g.les[len(g.les)-1], 1) {
			t.Fatalf("%v: le %v: want every bound then +Inf", k, g.les)
		}
		if !slices.IsSorted(g.les) || !slices.Equal(g.les[:len(bounds)], bounds) {
			t.Errorf("%v: le %v, want %v then +Inf", k, g.les, bounds)
		}
		if !slices.IsSorted(g.cums) {
			t.Errorf("%v: buckets not cumulative: %v", k, g.cums)
		}
		if g.cums[len(g.cums)-1] != g.count {
			t.Errorf("%v: +Inf %v != _count %v", k, g.cums[len(g.cums)-1], g.count)
		}
		prev := 0.0
		for i, c := range g.cums {
			if c-prev != float64(want[k][i]) {
				t.Errorf("%v: bucket %d holds %v, want %d", k, i, c-prev, want[k][i])
			}
			prev = c
		}
	}
}

// Bucket slices shorter or longer than the bounds: missing slots are 0,
// extra ones count above the last bound.
func TestHistogramRaggedBuckets(t *testing.T) {
	s := &Snapshot{Bounds: []float64{1, 2}, Comms: []Comm{{Name: "c", Time: []StateTime{
		{State: "A", Buckets: []uint64{1}},
		{State: "B", Buckets: []uint64{1, 1, 1, 1}},
		{State: "C", Buckets: []uint64{0, 0, 0}}, // empty: left out
	}}}}
	x := parseExposition(t, render(t, s))
	for _, c := range []struct {
		state, le string
		want      float64
	}{{"A", "2", 1}, {"A", "+Inf", 1}, {"B", "2", 2}, {"B", "+Inf", 4}} {
		if v, _ := x.get(t, "tcpstated_state_duration_seconds_bucket", "state", c.state, "comm", "c", "le", c.le); v != c.want {
			t.Errorf("%s le=%s: %v, want %v", c.state, c.le, v, c.want)
		}
	}
	if _, ok := x.get(t, "tcpstated_state_duration_seconds_count", "state", "C", "comm", "c"); ok {
		t.Errorf("an empty histogram was written")
	}
}

// Without kernel counters, their families are left out, not written as 0.
func TestKernelCountersUnreadable(t *testing.T) {
	s := testSnapshot()
	s.Kernel = nil
	x := parseExposition(t, render(t, s))
	for _, name := range []string{"tcpstated_ringbuf_lost_total", "tcpstated_ringbuf_submitted_total", "tcpstated_timewait_table_full_total", "tcpstated_filtered_total"} {
		if x.families[name] != nil {
			t.Errorf("%s written without kernel counters", name)
		}
	}
	if x.families["tcpstated_ringbuf_records_total"] == nil {
		t.Errorf("the daemon's own counters must stay")
	}
}

func TestEmptySnapshot(t *testing.T) {
	out := render(t, &Snapshot{})
	parseExposition(t, out)
	checkPromtool(t, out)
}

func TestSinkLabelsUnique(t *testing.T) {
	s := testSnapshot()
	s.Sinks = []Sink{{Name: "stdout", Written: 1}, {Name: "stdout", Written: 2}, {Name: "file:/var/log/a\"b\nc"}}
	x := parseExposition(t, render(t, s))
	for _, c := range []struct {
		sink string
		want float64
	}{{"stdout", 1}, {"stdout #2", 2}, {"file:/var/log/a\"b\nc", 0}} {
		if v, ok := x.get(t, "tcpstated_sink_written_total", "sink", c.sink); !ok || v != c.want {
			t.Errorf("sink %q: %v %v, want %v", c.sink, v, ok, c.want)
		}
	}
}

func TestAppendFloat(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 1: "1", 0.0001: "0.0001", 0.0005: "0.0005", 300: "300", 181.5: "181.5",
		1700000000.123: "1700000000.123", 1e-9: "1e-09", 1e20: "1e+20",
		math.Inf(1): "+Inf", math.Inf(-1): "-Inf",
	} {
		if got := string(appendFloat(nil, v)); got != want {
			t.Errorf("appendFloat(%v) = %q, want %q", v, got, want)
		}
	}
	if got := string(appendFloat(nil, math.NaN())); got != "NaN" {
		t.Errorf("NaN: %q", got)
	}
}

func TestAppendLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		`plain`: `plain`, `a"b`: `a\"b`, `a\b`: `a\\b`, "a\nb": `a\nb`, `a\nb`: `a\\nb`,
		"a\xffb": "a\uFFFDb", "\t": "\t", "é": "é",
	} {
		if got := string(AppendLabelValue(nil, in)); got != want {
			t.Errorf("AppendLabelValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// promtool, from Debian's prometheus package, is the reference parser and
// linter. Without it the check is skipped, except in CI.
func TestPromtool(t *testing.T) {
	checkPromtool(t, render(t, testSnapshot()))
}

func checkPromtool(t *testing.T, exposition string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found (apt-get install prometheus); CI=true: not skipping")
		}
		t.Skip("promtool not found (apt-get install prometheus)")
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func BenchmarkRender(b *testing.B) {
	// A busy host: 256 comms, 4 states with time, 3 with live sockets.
	s := testSnapshot()
	s.Bounds = []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300}
	s.Comms = nil
	for i := 0; i < 256; i++ {
		c := Comm{Name: "worker-" + strconv.Itoa(i), Transitions: 1000}
		for _, st := range []string{"SYN_SENT", "ESTABLISHED", "FIN_WAIT2", "TIME_WAIT"} {
			c.Time = append(c.Time, StateTime{State: st, Sum: 12.5, Buckets: make([]uint64, 16)})
			c.Time[len(c.Time)-1].Buckets[3] = 7
		}
		c.Sockets = []StateCount{{"ESTABLISHED", 10}, {"TIME_WAIT", 100}, {"CLOSE_WAIT", 1}}
		s.Comms = append(s.Comms, c)
	}
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], s)
	}
	b.SetBytes(int64(len(buf)))
}
